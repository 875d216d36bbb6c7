"""Map generation speed (maps/s) of the decoder's inference path, with and without reused activation buffers.

``Decoder.pairs_at_canonical_points`` (used by eval-vol, analyze, the traversals and analyze-landscape) runs the
hidden layers of every (latent, chunk of points) pair. Variant ``fresh`` is the plain :func:`residual_stack`,
which allocates a new (rows, width) tensor per layer; variant ``reused`` is the inference stack that writes every
layer into two preallocated buffers (``models.decoders._InferenceStack``). The maps of the two are identical
(checked here, bit for bit). Rounds alternate the variants (fresh, reused, fresh, reused, ...) in one process,
so a loaded or frequency-scaled machine slows both alike and the ratio stays meaningful. Untrained decoders of the
given width (speed does not depend on the weights). Prints a table and writes
benchmarks/results/map_generation.json with the CPU model and ISA.

    python benchmarks/map_generation.py                     # box 64 at widths 256 and 1024, box 128 at 256
    python benchmarks/map_generation.py --cases 64x256 --maps 4 --rounds 2   # a quick check
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model_and_flags


def time_variant(decoder, z: torch.Tensor, reuse: bool) -> tuple[float, torch.Tensor]:
    """Seconds to generate the maps at ``z`` with (``reuse``) or without reused buffers, and the maps."""
    from cryoscape.models import decoders

    original = decoders._InferenceStack.run
    if not reuse:
        def fresh(self, base, zproj):
            return decoders.residual_stack(torch.relu((base + zproj).to(self.dtype)), decoder.hidden, decoder.act)
        decoders._InferenceStack.run = fresh
    try:
        start = time.perf_counter()
        maps = decoder.eval_volumes(z)
        return time.perf_counter() - start, maps
    finally:
        decoders._InferenceStack.run = original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="64x256,64x1024,128x256",
                        help="box x decoder width, comma-separated (default 64x256,64x1024,128x256)")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--maps", type=int, default=8, help="maps per timed call")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per variant")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "map_generation.json"))
    args = parser.parse_args(argv)

    from cryoscape.models.config import ModelConfig
    from cryoscape.models.decoders import Decoder

    torch.manual_seed(0)
    model, flags = cpu_model_and_flags()
    rows = []
    for case in args.cases.split(","):
        box, width = (int(v) for v in case.lower().split("x"))
        config = ModelConfig(zdim=args.zdim, dec_dim=width, dec_layers=args.layers)
        decoder = Decoder(config, box).eval()
        z = torch.randn(args.maps, args.zdim)
        decoder.eval_volumes(z[:1])  # warm-up
        seconds = {"fresh": [], "reused": []}
        identical = True
        for _ in range(args.rounds):
            t_fresh, maps_fresh = time_variant(decoder, z, reuse=False)
            t_reused, maps_reused = time_variant(decoder, z, reuse=True)
            identical &= bool(torch.equal(maps_fresh, maps_reused))
            seconds["fresh"].append(t_fresh)
            seconds["reused"].append(t_reused)
        fresh = args.maps / min(seconds["fresh"])
        reused = args.maps / min(seconds["reused"])
        row = {"box": box, "width": width, "layers": args.layers, "maps_per_call": args.maps,
               "maps_per_second_fresh": fresh, "maps_per_second_reused": reused, "speedup": reused / fresh,
               "maps_identical": identical, "seconds": seconds}
        rows.append(row)
        print(f"box {box:4d} width {width:5d}: fresh {fresh:6.2f} maps/s, reused {reused:6.2f} maps/s, "
              f"x{reused / fresh:.2f}, identical maps: {identical}")
    result = {"benchmark": "map_generation", "command": "python benchmarks/map_generation.py " + " ".join(argv or
              sys.argv[1:]), "cpu_model": model, "isa_flags": sorted(f for f in flags if f.startswith(("avx", "amx",
              "fma"))), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "timing": "best of the alternating rounds", "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
