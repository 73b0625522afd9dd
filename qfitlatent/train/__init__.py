"""Training: the loop that writes a run folder, and the jobs the Train page launches.

- loop: train(), what `qfitlatent train` runs: setup and resume, one optimisation step,
  epoch-end validation and checkpoints, stop requests (SIGTERM, on_step, torchrun ranks).
- runlog: metrics.jsonl, the run's log of step and epoch records; the only code that writes or
  reads it (the loop appends, the page, the runs table and the model-card figure read).
- jobs: runs launched in the background from the web app: job.json, the one-run lock, the
  supervisor process, stop/delete/publish, progress.

A run folder holds split.json, metrics.jsonl (runlog), last.pt and best.pt (checkpoint), plus
job.json, train.log and data/ for runs launched by jobs.
"""
