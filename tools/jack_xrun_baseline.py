"""How many xruns the JACK server itself has here, with no rtsep in the graph.

Starts a private ``jackd --no-realtime -d dummy`` and one JACK-Client that only copies its input
port to its output port, for ``--seconds``; prints the xruns JACK reported. On a machine without
real-time scheduling (the dummy backend on a shared VM) this is the floor that any client's xrun
count sits on, and the figure to set ``rtsep live``'s counts against.

Usage: ``.venv/bin/python tools/jack_xrun_baseline.py --seconds 60``
"""

from __future__ import annotations

import argparse
import sys
import time

from rtsep.jack_server import JackServer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rate", type=int, default=48000)
    p.add_argument("--period", type=int, default=256)
    args = p.parse_args(argv)
    import jack

    with JackServer(samplerate=args.rate, period=args.period) as server:
        client = jack.Client("xrun-baseline", no_start_server=True, servername=server.name)
        inp = client.inports.register("in")
        out = client.outports.register("out")
        xruns = [0]
        cycles = [0]

        @client.set_process_callback
        def process(frames: int) -> None:
            out.get_array()[:] = inp.get_array()
            cycles[0] += 1

        @client.set_xrun_callback
        def xrun(delay: float) -> None:
            xruns[0] += 1

        with client:
            client.connect(out, inp)
            time.sleep(args.seconds)
        client.close()
    print(f"{args.seconds:.0f} s at {args.rate} Hz / {args.period}: {cycles[0]} cycles, {xruns[0]} xruns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
