"""The commands' code: what video.py, batch.py, compare.py, reproduce.py, benchmark.py and
examples/quality_panel.py run. The core (the rest of neural_style_tf, stylize.py, vgg.py,
neural_style.py) never imports this package; a piece two commands share lives here or,
when the core needs it too, in the core.

    video             a clip's run: warm starts, the temporal term, resuming, flicker
    clip              a clip's frames in (a folder or a video) and out (an H.264 video)
    batch             batch.py: many transfers on Ray, folder in, folder out, sweeps
    jobs              batch.py's jobs: what to run, each job's id, results.jsonl
    engine            Ray: a local instance or a cluster, long-lived workers, scheduling, retries
    worker            a batch worker: what it keeps between jobs (networks, graphs)
    sheet             a sweep's contact sheet
    compare           compare.py: L-BFGS against Adam, the runs (planning, resuming, Ray)
    compare_report    compare.py's numbers, evaluations.csv, summary.json and .md, the plots
    metrics           image measures shared by compare and quality: SSIM, held-out Gram distances
    reproduce         reproduce.py: the paper's figures with the gatys2016 preset
    benchmark         benchmark.py: seconds per evaluation, FLOPs, peak RSS
    benchmark_measure benchmark.py's measurements: networks, exact FLOPs, the machine, one child's run
    time_to_quality   benchmark.py --time-to-quality: routes timed to one loss
    quality           the quality panel (examples/quality_panel.py): its measures and sheets
"""
