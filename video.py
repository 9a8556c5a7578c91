"""Command line: temporally consistent video style transfer (Ruder, Dosovitskiy & Brox 2016).

    python video.py --input clip.mp4|frames_dir --styles painting.jpg --output out.mp4|out_dir [--width W]

Every flag of neural_style.py applies to each frame (the shared flags of
neural_style_tf/cli.py, checked by neural_style_tf/checks.py); the video's own flags
are below. Everything is checked before any network is built. Each finished frame is
written atomically, a rerun of the same command continues after the last finished one,
and Ctrl-C keeps the finished frames, assembles them and exits 130.

The algorithm is in neural_style_tf/apps/video.py, the optical flow in neural_style_tf/flow.py.
"""

from __future__ import annotations

import argparse
import math
import sys

from neural_style_tf import cli, flow, lifecycle
from neural_style_tf.apps import video as v
from neural_style_tf.errors import UsageError
from neural_style_tf.tf_runtime import configure_process

PROG = "video.py"


def build_parser():
    p = cli.Parser(
        prog=cli.command_name(PROG),
        description="Video style transfer without flicker: each frame starts from the previous result warped by "
                    "the optical flow, and a temporal loss keeps it there where the flow is reliable.",
        formatter_class=cli.Formatter,
    )
    cli.add_transfer_arguments(p)
    # The transfer's --content is each frame here; --output names a folder or a video.
    actions = {a.dest: a for a in p._actions}
    actions["content"].required = False
    actions["content"].help = argparse.SUPPRESS
    actions["output"].help = ("a folder (numbered PNG frames, summary.json) or a video file (" + ", ".join(
        v.VIDEO_EXTENSIONS) + "; its frames go to NAME.frames/, the summary to NAME.json)")
    actions["overwrite"].help = "start again over an earlier run's frames and output (else a rerun resumes it)"
    clip = p.add_argument_group("video")
    clip.add_argument("--input", required=True, help="a video file (read by ffmpeg) or a folder of numbered images")
    clip.add_argument("--temporal-weight", type=float, default=v.TEMPORAL_WEIGHT,
                      help="weight of the temporal loss: mean squared difference to the previous result warped, "
                           "over reliable pixels")
    clip.add_argument("--frame-iterations", type=int, default=None,
                      help="iterations of each frame after the first, which starts close to its result (default: "
                           "a third of --iterations, the first frame's, rounded up)")
    clip.add_argument("--long-term", type=int, nargs="+", default=(), metavar="J",
                      help="long-term consistency: also hold each frame to the results J frames back, e.g. 2 4")
    clip.add_argument("--flow", choices=flow.METHODS, default=flow.METHOD, help="OpenCV optical flow method")
    clip.add_argument("--fill", choices=v.FILLS, default=v.FILL,
                      help="where the warped previous result is unreliable, start from the content or from noise")
    clip.add_argument("--independent", action="store_true",
                      help="no temporal consistency: every frame as neural_style.py would make it (for comparison; "
                           "the flicker is still measured)")
    clip.add_argument("--fps", type=float, default=None,
                      help=f"frame rate of a video output (default: the input video's; {v.FPS:g} for a folder)")
    clip.add_argument("--summary", default=None, help="the JSON summary's path (default: beside the output)")
    return p


def check_options(options):
    if not (math.isfinite(options.temporal_weight) and options.temporal_weight >= 0):
        raise UsageError(f"--temporal-weight must be a finite non-negative number, not {options.temporal_weight}")
    if options.frame_iterations is not None and options.frame_iterations <= 0:
        raise UsageError(f"--frame-iterations must be a positive integer, not {options.frame_iterations}")
    bad = [j for j in options.long_term if j < 2]
    if bad:
        raise UsageError(f"--long-term takes frame offsets of 2 or more (1 is always used), not {bad[0]}")
    if options.fps is not None and not (math.isfinite(options.fps) and options.fps > 0):
        raise UsageError(f"--fps must be a positive number, not {options.fps}")


def parse(argv=None):
    """argv -> (transfer settings, VideoOptions, Plan), all checked. Raises UsageError."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, given = cli.parse_once(build_parser, argv)
    if args.content is not None:
        raise UsageError("video.py takes --input (a video or a folder of frames), not --content")
    try:
        settings = cli.parse_settings(args, given)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    options = v.VideoOptions(input=args.input, output=args.output, temporal_weight=args.temporal_weight,
                             frame_iterations=args.frame_iterations, long_term=tuple(sorted(set(args.long_term))),
                             flow=args.flow, fill=args.fill, independent=args.independent, fps=args.fps,
                             summary=args.summary)
    check_options(options)
    return settings, options, v.plan(settings, options)


def main(argv=None):
    def run():
        cli.require_extra("video")  # OpenCV and imageio-ffmpeg: pip install 'neural-style-tf[video]'
        settings, options, plan = parse(argv)
        configure_process()  # before TensorFlow is imported (see tf_runtime)
        return v.run(settings, options, plan)

    # v.run keeps the finished frames itself; an interrupt that reaches here came before any.
    return lifecycle.run_command(cli.command_name(PROG), run, "interrupted before any frame was made")


def console_main():
    lifecycle.exit_process(main())


if __name__ == "__main__":
    console_main()
