"""Surgical smoke removal on the held-out test split of ``desmoke-tissue``: RGA-Net against
the input itself, the dark channel prior and the U-Net; temporal flicker on the test
sequences; frames per second at 512 x 512 on this machine.

    python benchmarks/desmoke_results.py \\
        [--checkpoint tasks/desmoke/weights/quickstart.safetensors] \\
        [--unet tasks/desmoke/weights/quickstart_unet.safetensors] \\
        [--root DIR] [--limit N] [--out benchmarks/results/desmoke_tissue.json]

Test set: the prepared ``desmoke-tissue`` test pairs (``domainvit data prepare
desmoke-tissue``): smoke simulated over regions of the real tissue images that no model
trained on; ``--root`` scores a folder of real pairs instead (the layouts of
``domainvit.datasets.frames.find_pairs``). Scores (``tasks/desmoke/metrics.py``): PSNR
(dB), SSIM, CIEDE2000 (lower is better); means over frames. The models run as
``domainvit predict`` runs them, at ``process_scale`` 1 and at the faster 0.5 and 0.25.

Video: the ``test_video`` sequences (16 frames, 128 x 128, drifting smoke and camera),
frame by frame; flicker is the mean absolute frame-to-frame change of the output that the
clean sequence does not have (lower is better); RGA-Net also with its correction fields
smoothed over frames (``data.temporal_smoothing`` 0.5).

Speed: frames per second on one 512 x 512 frame (a test frame resized), after a warm-up,
with torch's default threads. Writes the JSON and a markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_hsi import cpu_name  # the benchmarks folder is on the path of its scripts
from skimage.transform import resize

from domainvit.analysis.common import load_model
from domainvit.datasets.desmoke_tissue import DESMOKE_TISSUE
from domainvit.datasets.registry import prepare
from domainvit.tasks.desmoke import analysis as da

SCALES = (1.0, 0.5, 0.25)
SPEED_SIZE = 512


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path,
                        default=Path("tasks/desmoke/weights/quickstart.safetensors"))
    parser.add_argument("--unet", type=Path,
                        default=Path("tasks/desmoke/weights/quickstart_unet.safetensors"))
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/desmoke_tissue.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", file=sys.stderr)

    folder = prepare(DESMOKE_TISSUE)
    smoky, clean = da.load_pairs(args.root or folder / "test")
    sequences = [] if args.root else da.load_sequences(folder / "test_video")
    if args.limit:
        smoky, clean, sequences = smoky[:args.limit], clean[:args.limit], sequences[:2]
    models = {"RGA-Net": load_model("desmoke/quickstart", args.checkpoint),
              "U-Net": load_model("desmoke/quickstart_unet", args.unet)}
    methods = {"input (no-op)": lambda frame: frame, "dark channel prior": da.dcp_method}
    for name, (model, cfg) in models.items():
        for scale in SCALES:
            label = name if scale == 1 else f"{name}, process_scale {scale:g}"
            methods[label] = da.model_method(model, cfg.data, process_scale=scale)
    results = {}
    for label, method in methods.items():
        log(f"frames: {label}")
        results[label] = da.score([method(f) for f in smoky], clean)
    video = {}
    if sequences:
        video_methods = {k: methods[k] for k in ("input (no-op)", "dark channel prior",
                                                 "RGA-Net", "U-Net")}
        for label, method in video_methods.items():
            log(f"video: {label}")
            video[label] = da.score_sequences(sequences, method)
        model, cfg = models["RGA-Net"]
        video["RGA-Net, temporal_smoothing 0.5"] = da.score_sequences(
            sequences, run_sequence=da.video_method(model, cfg.data, 0.5))
    log("speed")
    frame = resize(smoky[0], (SPEED_SIZE, SPEED_SIZE, 3), order=1, anti_aliasing=True)
    frame = frame.astype(np.float32)
    speed = {label: da.frames_per_second(method, frame, repeats=3)
             for label, method in methods.items() if label != "input (no-op)"}
    record = {
        "benchmark": str(args.root) if args.root else f"{DESMOKE_TISSUE} test split",
        "frames": len(smoky),
        "frame_size": list(smoky[0].shape[:2]),
        "sequences": len(sequences),
        "checkpoints": {"RGA-Net": str(args.checkpoint), "U-Net": str(args.unet)},
        "parameters": {name: sum(p.numel() for p in m.parameters())
                       for name, (m, _) in models.items()},
        "results": results,
        "video": video,
        "fps_512": speed,
        "machine": {"cpu": cpu_name(), "python": platform.python_version(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "seconds": round(time.perf_counter() - started, 1),
        "limit": args.limit,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return 0


def markdown(record: dict) -> str:
    size = "x".join(map(str, record["frame_size"]))
    lines = [f"# Smoke removal on {record['benchmark']} ({record['frames']} frames, {size})",
             "", "| method | PSNR (dB) | SSIM | CIEDE2000 | frames/s at 512x512 |",
             "|---|---|---|---|---|"]
    for label, s in record["results"].items():
        fps = record["fps_512"].get(label)
        lines.append(f"| {label} | {s['psnr']:.2f} | {s['ssim']:.3f} | {s['ciede2000']:.2f} | "
                     + (f"{fps:.2f}" if fps is not None else "-") + " |")
    if record["video"]:
        lines += ["", f"Video: {record['sequences']} test sequences of 16 frames (128x128); "
                  "flicker = mean |output change - clean change| between frames:", "",
                  "| method | PSNR (dB) | SSIM | flicker |", "|---|---|---|---|"]
        for label, s in record["video"].items():
            lines.append(f"| {label} | {s['psnr']:.2f} | {s['ssim']:.3f} | {s['flicker']:.4f} |")
    lines += ["", "Parameters: " + ", ".join(f"{k} {v:,}" for k, v in
                                               record["parameters"].items()),
              f"Machine: {record['machine']['cpu']}, {record['machine']['threads']} threads, "
              f"torch {record['machine']['torch']}; {record['seconds']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
