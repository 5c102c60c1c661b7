"""`python -m backend <command>`: the backend's command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _world(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.gltf:
        from backend.world.gltf_clip import write_gltf_clip

        info = write_gltf_clip(Path(args.out), Path(args.gltf), args.animation, args.views, args.frames, args.size,
                               seed=args.seed, fps=args.fps, blender=args.blender, engine=args.engine,
                               fov_deg=args.fov)
        what = f"{Path(args.gltf).name} ({info['animation']})"
    else:
        from backend.world.clip import write_world_clip

        info = write_world_clip(Path(args.out), args.seed, args.views, args.frames, args.size, args.family,
                                fps=args.fps or 24.0, supersample=args.supersample, fov_deg=args.fov)
        what = f"seed {args.seed}: {info['family']} ({info['motion']})"
    print(f"{what}: {args.views} views x {args.frames} frames x {args.size}px -> {args.out} "
          f"in {time.perf_counter() - started:.1f}s")
    return 0


def _bench(args: argparse.Namespace) -> int:
    json_path = Path(args.json) if args.json else None
    if args.what == "world":
        from backend.bench.world import run

        run(results=Path(args.results), json_path=json_path)
    elif args.what == "interp":
        from backend.bench.interp import run as run_interp

        gltf = [Path(p) for p in args.gltf] if args.gltf else None
        run_interp(parse_seeds(args.seeds), Path(args.checkpoints), Path(args.results), json_path, args.config, gltf)
    elif args.what == "canonical":
        from backend.bench.canonical import run as run_canonical

        run_canonical(parse_seeds(args.seeds), Path(args.checkpoints), Path(args.results), json_path, args.config)
    elif args.what == "track":
        from backend.bench.track import run as run_track

        gltf = [Path(p) for p in args.gltf] if args.gltf else None
        run_track(parse_seeds(args.seeds), Path(args.checkpoints), Path(args.results), json_path, args.config, gltf,
                  args.footage_size)
    elif args.what == "scale":
        from backend.bench.scale import run as run_scale

        counts = [int(n) for n in (args.sizes or "16,64,256").split(",")]
        run_scale(counts, parse_seeds(args.seeds)[0], Path(args.checkpoints), Path(args.results), json_path)
    elif args.what == "plots":
        from backend.bench.scale import plots

        print("\n".join(str(p) for p in plots(Path(args.results).parent)))
    elif args.what == "mono":
        from backend.bench.mono import run as run_mono

        run_mono(parse_seeds(args.seeds), Path(args.checkpoints), Path(args.results), json_path, args.config, args.fit_steps)
    elif args.what == "speed":
        from backend.bench.speed import run as run_speed

        run_speed(args.config.split(","), args.device or "cpu", Path(args.results), json_path)
    elif args.what == "service":
        from backend.bench.service import run as run_service

        run_service(parse_seeds(args.seeds)[0], args.frames or 12, args.jobs, json_path, Path(args.results))
    elif args.what == "import":
        from backend.bench.blender_import import run as run_import

        run_import(args.vertices, args.frames or 300, Path(args.results), json_path)
    elif args.what == "matte":
        from backend.bench.matte import run as run_matte
        from backend.bench.mono import VIDEOS

        run_matte(parse_seeds(args.seeds), VIDEOS / "davis", Path(args.results), json_path)
    elif args.what == "footage":
        from backend.bench.footage import run as run_footage

        width, height = (int(n) for n in args.resolution.lower().split("x"))
        run_footage(args.frames or 600, width, height, Path(args.results), json_path)
    return 0


def parse_seeds(text: str) -> list[int]:
    """'1000000-1000007' or '5,9,12' -> seeds."""
    if "-" in text:
        low, high = (int(x) for x in text.split("-", 1))
        return list(range(low, high + 1))
    return [int(x) for x in text.split(",")]


def _train(args: argparse.Namespace) -> int:
    if args.target in ("lrm", "canonical"):
        from backend.train.train_lrm import main as train
    elif args.target == "mvdiff":
        from backend.train.train_mvdiff import main as train
    else:
        from backend.train.train_lim import main as train
    if args.lr is None:
        args.lr = 4e-4 if args.target in ("lrm", "canonical") else 2e-4
    return train(args)


def _export(args: argparse.Namespace) -> int:
    """A training run's model -> a shipped checkpoint folder (fp16 by default)."""
    import torch

    from backend.models.checkpoints import load_checkpoint, read_config, save_checkpoint

    source = Path(args.run) / "model" if (Path(args.run) / "model").is_dir() else Path(args.run)
    meta = read_config(source)
    model = load_checkpoint(source, meta["kind"])
    save_checkpoint(model, Path(args.to), meta["kind"], dtype=None if args.fp32 else torch.float16,
                    extra={"step": meta.get("step"), "trained": args.note} if args.note else {"step": meta.get("step")})
    print(f"{source} ({meta['kind']}, step {meta.get('step')}) -> {args.to}")
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    from backend.reconstruct import Settings, run

    settings = Settings.for_quality(args.quality, stride=args.stride, target_faces=args.faces, texture_size=args.texture,
                                    retime=args.retime, fit_steps=args.fit_steps)
    videos = [Path(v) for v in args.views] if args.views else None
    return run(Path(args.clip) if args.clip else None, Path(args.out), Path(args.checkpoints), settings,
               videos, Path(args.cameras) if args.cameras else None, args.frame_start, args.frame_end,
               [None if m == "-" else Path(m) for m in args.mask] if args.mask else None, args.elevation, args.seed,
               args.fps, args.offsets)


def _demo(args: argparse.Namespace) -> int:
    from backend.demo import run

    return run(Path(args.out))


def _serve(args: argparse.Namespace) -> int:
    from backend.server.serve import serve

    return serve(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend", description="lim4d backend")
    commands = parser.add_subparsers(dest="command", required=True)

    world = commands.add_parser("world", help="render a procedural (or glTF) 4D clip folder with ground truth")
    world.add_argument("--seed", type=int, default=0)
    world.add_argument("--views", type=int, default=4)
    world.add_argument("--frames", type=int, default=16)
    world.add_argument("--size", type=int, default=128, help="image side in pixels (even)")
    world.add_argument("--out", required=True)
    world.add_argument("--family", choices=["creature", "deformer", "rigid"], default=None)
    world.add_argument("--fps", type=float, default=None, help="clip rate (default 24; glTF: real time)")
    world.add_argument("--fov", type=float, default=40.0, help="horizontal field of view of the ring cameras (degrees)")
    world.add_argument("--supersample", type=int, default=2, help="RGB antialiasing factor")
    world.add_argument("--gltf", default=None, help="render this animated glTF/GLB in Blender instead")
    world.add_argument("--animation", default=None, help="glTF animation to play (default: first by name)")
    world.add_argument("--blender", default=None, help="Blender binary (default: the bpy module)")
    world.add_argument("--engine", default="BLENDER_WORKBENCH", choices=["BLENDER_WORKBENCH", "CYCLES"])
    world.set_defaults(handler=_world)

    bench = commands.add_parser("bench", help="benchmarks; results go to benchmarks/RESULTS.md")
    bench.add_argument("what", choices=["world", "interp", "speed", "track", "canonical", "service", "import", "mono", "scale", "plots",
                                            "footage", "matte"])
    bench.add_argument("--seeds", default="1000000-1000007", help="evaluation seeds, A-B or a,b,c")
    bench.add_argument("--config", default="tiny", help="model config (speed: comma-separated list)")
    bench.add_argument("--checkpoints", default="backend/checkpoints", help="folder of checkpoints (lrm/, lim/, ...)")
    bench.add_argument("--device", default=None, help="speed: cpu or cuda")
    bench.add_argument("--gltf", nargs="*", default=None, help="interp, track: evaluate on these animated glTF assets instead")
    bench.add_argument("--footage-size", type=int, default=None,
                       help="track: the job's footage in px (default: the judged 64²; the models read 64² whatever it is)")
    bench.add_argument("--json", default=None, help="also write the figures to this JSON file")
    bench.add_argument("--jobs", type=int, default=20, help="service: consecutive jobs of the soak")
    bench.add_argument("--sizes", default=None, help="scale: clip lengths in frames (default 16,64,256)")
    bench.add_argument("--frames", type=int, default=None,
                       help="service: frames per job (12); import: frames (300); footage: the clip's length (600)")
    bench.add_argument("--resolution", default="1920x1080", help="footage: the clip's width x height")
    bench.add_argument("--vertices", type=int, default=20000, help="import: vertices per frame")
    bench.add_argument("--fit-steps", type=int, default=None,
                       help="mono: steps fitting keyframes to the input view (default: the final preset's; 0: off)")
    bench.add_argument("--results", default="benchmarks/RESULTS.md")
    bench.set_defaults(handler=_bench)

    train = commands.add_parser("train", help="train a model on the procedural world (resumable, torchrun-ready)")
    train.add_argument("target", choices=["lrm", "lim", "canonical", "mvdiff"])
    train.add_argument("--config", default="tiny", choices=["tiny", "base"])
    train.add_argument("--out", required=True)
    train.add_argument("--resume", action="store_true", help="continue from the state in --out")
    train.add_argument("--steps", type=int, default=20000)
    train.add_argument("--batch", type=int, default=4, help="scenes per step and process")
    train.add_argument("--rays", type=int, default=512, help="rays per target view per step")
    train.add_argument("--lr", type=float, default=None, help="peak learning rate (default: LRM 4e-4, LIM 2e-4)")
    train.add_argument("--warmup", type=int, default=200)
    train.add_argument("--log-every", type=int, default=20)
    train.add_argument("--save-every", type=int, default=200)
    train.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    train.add_argument("--minutes", type=float, default=None,
                       help="stop after about this long: the step count (at most --steps) is planned from the first steps' speed")
    train.add_argument("--workers", type=int, default=0,
                       help="render the batches in this many worker processes, a few steps ahead (0: inline)")
    train.add_argument("--lrm", default="backend/checkpoints/lrm", help="LIM: the frozen LRM checkpoint")
    train.add_argument("--no-causal", action="store_true", help="LIM: ablation without L_causal")
    train.add_argument("--causal-weight", type=float, default=None, help="LIM: weight of L_causal (default 10)")
    train.add_argument("--generated-views", type=float, default=0.0,
                       help="LRM: share of scenes whose views 1.. come from the diffusion model (monocular robustness)")
    train.add_argument("--views-model", default="backend/checkpoints/mvdiff", help="LRM: the diffusion model for --generated-views")
    train.add_argument("--data-offset", type=int, default=0,
                       help="draw step s's scenes as step s + N would (a warm start sees new scenes)")
    train.add_argument("--init", default=None, help="warm start from this checkpoint (e.g. canonical from backend/checkpoints/lrm)")
    train.set_defaults(handler=_train)

    export = commands.add_parser("export", help="turn a training run into a shipped checkpoint folder (fp16)")
    export.add_argument("run", help="training --out folder (or a checkpoint folder)")
    export.add_argument("--to", required=True)
    export.add_argument("--fp32", action="store_true")
    export.add_argument("--note", default=None, help="how it was trained, stored in config.json")
    export.set_defaults(handler=_export)

    rec = commands.add_parser("reconstruct", help="clip -> tracked, textured mesh sequence (job folder)")
    rec.add_argument("clip", nargs="?", default=None,
                     help="a clip folder (as `world` writes), or a monocular clip: a video file, a folder of images, or the "
                          "first image of a numbered sequence (frame_0001.png)")
    rec.add_argument("--views", nargs="*", default=None, help="or: one video per camera ...")
    rec.add_argument("--cameras", default=None, help="... with their cameras.json (clip-folder format); monocular: "
                     "the camera that shot the clip, to place the result where it saw the object")
    rec.add_argument("--mask", nargs="+", default=None,
                     help="mask clips (white = object) instead of the automatic matte: one for a monocular clip, one per "
                          "view otherwise (- : matte that view from its footage)")
    rec.add_argument("--elevation", type=float, default=None, help="monocular: camera height over the object, degrees")
    rec.add_argument("--seed", type=int, default=0, help="monocular: seed of the generated views")
    rec.add_argument("--fit-steps", type=int, default=None,
                     help="steps fitting each keyframe to the footage views (preset's by default; 0: off)")
    rec.add_argument("--out", required=True)
    rec.add_argument("--checkpoints", default="backend/checkpoints")
    rec.add_argument("--stride", type=int, default=4, help="keyframe every N frames")
    rec.add_argument("--quality", default="final", choices=["preview", "final"], help="preset for the options below")
    rec.add_argument("--faces", type=int, default=None, help="target face count (default: the preset's)")
    rec.add_argument("--texture", type=int, default=None, help="texture size in pixels (default: the preset's)")
    rec.add_argument("--retime", type=float, default=1.0, help="output frames per input frame (2: slow motion ×2)")
    rec.add_argument("--frame-start", type=int, default=0)
    rec.add_argument("--frame-end", type=int, default=None, help="exclusive")
    rec.add_argument("--fps", type=float, default=None,
                     help="the frame rate of image sequences (default 24; video files keep their own)")
    rec.add_argument("--offsets", nargs="+", type=int, default=None,
                     help="with --views: each view's own frames before the clip's first (cameras not started together)")
    rec.set_defaults(handler=_reconstruct)

    demo = commands.add_parser("demo", help="the whole job on the bundled models, through the extension in Blender")
    demo.add_argument("--out", default="out")
    demo.set_defaults(handler=_demo)

    from backend.server.serve import add_arguments as serve_arguments  # argparse only; the server loads on use

    serve = commands.add_parser("serve", help="the HTTP backend the Blender add-on talks to")
    serve_arguments(serve)
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
