"""`python -m archive simulate-site`: upload a site's exposures to a running stack (see archive.local.simulate)."""

from __future__ import annotations

import argparse

from archive.local.simulate import DEFAULT_FILES, SiteRun, UploadError, describe, simulate
from archive.local.simulate import __doc__ as SIMULATE_DOC
from archive.local.target import add_env_file_argument, load_target


def run_command(args: argparse.Namespace) -> int:
    print(load_target(args.env_file))
    run = SiteRun(
        site=args.site,
        exposures=args.exposures,
        files=args.files,
        s3_directory=args.s3dir,
        channel=args.channel,
        data_type=args.data_type,
        smartstack=args.smartstack,
        filters=tuple(f.strip() for f in args.filters.split(",") if f.strip()) if args.filters else (),
        instrument=args.instrument,
        start_counter=args.start_counter,
        seed=args.seed,
        parallel=args.parallel,
    )
    try:
        result = simulate(run, progress=not args.no_progress)
    except (ValueError, UploadError) as exc:
        print(f"error: {getattr(exc, 'reason', exc)}")
        return 2
    print(describe(result))
    for exposure in result.exposures[:3]:
        print(f"  {exposure.s3_directory}/{exposure.base_filename}-…")
    if len(result.exposures) > 3:
        print(f"  … and {len(result.exposures) - 3} more")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate-site",
        help="generate exposures like an observatory site and upload them with presigned POSTs",
        description=SIMULATE_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--site", default="tst", help="site code, 3-6 letters/digits (default: %(default)s)")
    parser.add_argument("--exposures", type=int, default=1, help="how many exposures (default: %(default)s)")
    parser.add_argument("--files", help="which files per exposure, letters from hjtfF (see above)")
    parser.add_argument("--s3dir", choices=tuple(DEFAULT_FILES), default="data", help="default: %(default)s")
    parser.add_argument("--channel", type=int, choices=(1, 2, 3), default=1, help="info-image channel (default: 1)")
    parser.add_argument("--data-type", default="EX", help="EX, EP, EF, … (default: %(default)s)")
    parser.add_argument("--smartstack", type=int, default=0, metavar="K", help="group exposures in smart stacks of K")
    parser.add_argument(
        "--filters", metavar="F1,F2,…",
        help="filters in turn, one per exposure (e.g. rp,gp,B with --smartstack 3: a colour set of one sky)",
    )
    parser.add_argument("--instrument", help="camera name in the filename (default: kb001ms; as001 for allsky)")
    parser.add_argument("--start-counter", type=int, help="first frame counter (default: after the bucket's highest)")
    parser.add_argument("--seed", type=int, help="random seed, for repeatable images and headers")
    parser.add_argument("--parallel", type=int, default=4, help="concurrent uploads (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_env_file_argument(parser)
    parser.set_defaults(func=run_command)
