"""How many xruns the JACK server itself has here, with no rtsep in the graph.

Starts a private ``jackd -d dummy`` and one trivial client for ``--seconds``, then prints the late
cycles from jackd's log, attributed per client (:func:`rtsep.jack_server.xrun_report`). The client
is either a JACK-Client in Python that copies its input port to its output port (``--client
python``) or Debian jackd2's C example ``jack_simple_client`` (a sine to the playback ports,
``--client c``). On a shared VM without a sound card this is the floor that any client's xrun count
sits on, and the figure to set ``rtsep live``'s counts against (``tools/measure_live.py
--standalone`` measures rtsep alone on the same kind of server).

Usage: ``.venv/bin/python tools/jack_xrun_baseline.py --seconds 60 [--client c] [--realtime]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rtsep.jack_server import JackServer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rate", type=int, default=48000)
    p.add_argument("--period", type=int, default=256)
    p.add_argument("--client", choices=["python", "c"], default="python")
    p.add_argument("--realtime", action="store_true", help="jackd -R (real-time scheduling; needs root)")
    args = p.parse_args(argv)
    import jack

    with (
        tempfile.TemporaryDirectory() as tmp,
        JackServer(
            samplerate=args.rate, period=args.period, realtime=args.realtime, log=Path(tmp) / "jackd.log"
        ) as server,
    ):
        if args.client == "c":
            env = dict(os.environ, JACK_DEFAULT_SERVER=server.name)
            proc = subprocess.Popen(["jack_simple_client"], env=env, stdout=subprocess.DEVNULL)
            time.sleep(args.seconds)
            proc.terminate()
            proc.wait(timeout=10)
        else:
            client = jack.Client("xrun-baseline", no_start_server=True, servername=server.name)
            inp = client.inports.register("in")
            out = client.outports.register("out")

            @client.set_process_callback
            def process(frames: int) -> None:
                out.get_array()[:] = inp.get_array()

            with client:
                client.connect(out, inp)
                time.sleep(args.seconds)
            client.close()
        report = server.xruns()
    summary = {"seconds": args.seconds, "rate": args.rate, "period": args.period}
    summary |= {"client": args.client, "jack_realtime": args.realtime, **report}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
