"""Command line: neural style transfer with the flags of the classic TensorFlow tool.

    python neural_style.py --content photo.jpg --styles painting.jpg --output out.jpg

Everything is validated before any network is built (TensorFlow is not even imported
until then), so a typo costs about a second. The long run reports progress through a
callback, writes checkpoints and the output atomically, and on Ctrl-C or SIGTERM saves
the best image so far and exits 130. `--web [PORT]` shows the image and the loss curve as
the run goes, on http://127.0.0.1:PORT/ (neural_style_tf/live.py).

The flags are defined in neural_style_tf/cli.py (shared with compare.py), their
defaults in neural_style_tf/settings.py, and one transfer runs in
neural_style_tf/transfer.py.
"""

from __future__ import annotations

import sys

from neural_style_tf import cli, lifecycle, live, transfer
from neural_style_tf.tf_runtime import configure_process

PROG = "neural_style.py"


def build_parser():
    p = cli.Parser(
        prog=cli.command_name(PROG),
        description="Neural style transfer (Gatys, Ecker & Bethge) with L-BFGS or Adam.",
        formatter_class=cli.Formatter,
    )
    cli.add_transfer_arguments(p)
    # The live view is this command's: a batch job or a video frame has no --web.
    outputs = next(g for g in p._action_groups if g.title == "progress and outputs")
    cli.add_web_argument(outputs)
    # So are the resumable checkpoints: a batch job's output is made on a worker, a video resumes by its frames.
    cli.add_resume_arguments(outputs)
    return p


def parse(argv=None):
    """argv -> validated, frozen settings (a preset applied). Raises UsageError."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return cli.settings_from_argv(build_parser, argv)


def main(argv=None):
    def run():
        settings = parse(argv)
        configure_process()  # before TensorFlow is imported (see tf_runtime)
        # The live view's port is taken now (a busy one is a usage error before any network
        # is built), and given back whatever ends the run.
        with live.serving(settings.run.web, lifecycle.say) as view:
            return transfer.execute(settings, listeners=[view] if view else (), resumable=True)[0]

    # A KeyboardInterrupt that reaches here came before the optimisation: nothing to save.
    return lifecycle.run_command(cli.command_name(PROG), run, "interrupted before any image was made")


def console_main():
    lifecycle.exit_process(main())


if __name__ == "__main__":
    console_main()
