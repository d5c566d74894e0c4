"""Run a cdc-bench sweep on a SLURM cluster: dask-jobqueue submits one GPU job per Dask worker, this script is the
client (the only writer of the results folder) and runs `cdc-bench run --executor dask --scheduler ...`.

    pip install "cdc-bench" "dask-jobqueue>=0.9"          # on the login node (the client) and in the workers' env
    cdc-bench weights --download                           # once, into a cache folder every node can read
    python examples/slurm_dask.py --jobs 8 --partition gpu --account myproj --walltime 12:00:00 \\
        --env-setup "source ~/venvs/cdc/bin/activate" --env-setup "export CDC_BENCH_CACHE=/shared/cdc-cache" \\
        -- -d kodak,div2k-valid -c cdc --preprocess resize-crop:768 -m psnr,ms-ssim,lpips,fid --device cuda \\
           --out /shared/results/cdc-kodak-div2k --save-recon

Everything after ``--`` is passed to ``cdc-bench run``. Each job is one Dask worker with one GPU and one task at a
time (``--gres=gpu:1``, ``processes=1``, one thread): the CDC decoder fills a GPU on its own, and a learned
codec's weights then load once per worker. Workers receive the image bytes from this client, so they need no copy
of the datasets, only cdc-bench, its dependencies and the weight files (see notes in the README: "Dask and SLURM").
If the client dies, rerun the same command: the results folder resumes the sweep.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    run_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8, help="SLURM jobs = Dask workers = GPUs")
    parser.add_argument("--partition", default=None)
    parser.add_argument("--account", default=None)
    parser.add_argument("--walltime", default="12:00:00")
    parser.add_argument("--cores", type=int, default=8, help="CPU cores per job (image I/O, metrics)")
    parser.add_argument("--memory", default="32GB", help="memory per job")
    parser.add_argument("--gpus-per-job", type=int, default=1, help="0: CPU-only jobs (no --gres line)")
    parser.add_argument("--env-setup", action="append", default=[],
                        help="shell line run in each job before the worker starts (repeatable)")
    parser.add_argument("--interface", default=None, help="network interface the workers reach the client on (ib0)")
    args = parser.parse_args(own)

    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        print("this example needs dask-jobqueue: pip install 'dask-jobqueue>=0.9'", file=sys.stderr)
        return 2
    from distributed import Client

    from cdc_bench.cli import main as cdc_bench

    cluster = SLURMCluster(
        queue=args.partition, account=args.account, walltime=args.walltime, memory=args.memory,
        cores=1, processes=1,                          # one worker process per job, one task at a time (one GPU),
        job_cpu=args.cores,                            # with the job's cores for the task's torch threads
        job_extra_directives=[f"--gres=gpu:{args.gpus_per_job}"] if args.gpus_per_job else [],
        job_script_prologue=args.env_setup,
        interface=args.interface)
    print(cluster.job_script(), file=sys.stderr)
    cluster.scale(jobs=args.jobs)
    try:
        with Client(cluster) as client:
            print(f"waiting for the first worker (dashboard: {client.dashboard_link}) ...", file=sys.stderr)
            client.wait_for_workers(1, timeout=3600)  # queued jobs join the sweep as they start
        return cdc_bench(["run", *run_args, "--executor", "dask", "--scheduler", cluster.scheduler_address],
                         standalone_mode=False) or 0
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
