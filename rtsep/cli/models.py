"""``rtsep models``: list the architectures, their variants, sizes and latencies."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "models",
        help="list architectures with hop, latency and parameters",
        description="List every architecture x variant at a size, with hop, algorithmic latency and size.",
    )
    p.add_argument("--size", default="live", help="size to describe (default: live)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from rtsep import models

    table = Table(title=f"rtsep architectures ({args.size} size)")
    for col in ("architecture", "variant", "sources", "rate", "ch", "hop", "latency (ms)", "params"):
        table.add_column(
            col, justify="right" if col not in ("architecture", "variant", "sources") else "left"
        )
    for name in models.available():
        for variant in models.VARIANTS:
            m = models.build(name, variant=variant, size=args.size)
            table.add_row(
                name, variant, ",".join(m.sources), str(m.sample_rate), str(m.channels), str(m.hop),
                f"{m.latency_ms():.2f}", f"{m.num_parameters() / 1e6:.2f} M",
            )  # fmt: skip
    Console().print(table)
    return 0
