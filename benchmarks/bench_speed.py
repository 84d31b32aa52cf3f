"""Speed of the exact ROF solve against scikit-image's ``denoise_tv_chambolle``, in one process.

Protocol (PROTOCOL.md): L2, beta = 1, isotropic, channelwise colour, weight 0.1, float32,
sigma 25 noise; the accuracy target is a relative energy gap ``(E(u) - E*) / E* <= 1e-4`` with
``E`` computed here in float64 numpy (not by the solver) and ``E*`` the energy of a float64
``rof`` run certified by its primal-dual gap (1e-7 relative, 1e-6 at 4 MP). scikit-image's
iteration count (``eps=0``) is the first that reaches the same gap: a float64 replay of its
iteration predicts it and scikit-image itself confirms it at that count and one below. It is
given float32 input, as tvdenoise solves in float32 (scikit-image computes in its input's
float type), with a float64 column beside it; both sides are timed best of ``--repeats`` in
this process, the load average beside each row. Also
measured: the time of one elementwise pass over as many values as the dual variable
(``torch.add(a, b, out=c)``, the "unit"), each solver's time per iteration in units, the cost
of the gap check, several algorithms to the same gap, the loosest tolerance whose PSNR is
within 0.01 dB of the converged one, the end-to-end command split into stages, and peak
memory per pixel-channel.

The solver comparison uses ``tv="isotropic"``, the model scikit-image minimises. The default
model (``tv="symmetric"``, vectorial colour) is timed against it by ``--default-model``, which
also measures the default command end to end and its peak memory, into a section of its own.

    python benchmarks/bench_speed.py            # full run, writes its section of RESULTS.md
    python benchmarks/bench_speed.py --default-model   # a few minutes, its own section
    python benchmarks/bench_speed.py --smoke    # a 64x64 image in seconds (CI)
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

# On a shared machine, OpenMP threads that spin at barriers while their partner is descheduled
# make every parallel operation (PyTorch's and the fused kernel's) tens of times slower; this
# must be set before torch loads the OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
from common import commit, write_section

from tvdenoise.fidelity import L2Fidelity
from tvdenoise.ops import divergence, gradient
from tvdenoise.solvers import FUSED_CHECK_EVERY, Problem, native, solve
from tvdenoise.solvers.primal_dual import project_dual, solve_primal_dual
from tvdenoise.solvers.rof import solve_rof

WEIGHT = 0.1
TARGET = 1e-4
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "bench_speed.py"


def load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def noisy_images(smoke: bool, large: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(clean, noisy) float64 (H, W, C) images, noise as in PROTOCOL.md, "Noise"."""
    from skimage import data, img_as_float
    from skimage.transform import resize

    def noisy(clean: np.ndarray, index: int) -> np.ndarray:
        z = np.random.default_rng(1234 + index).standard_normal(clean.shape)
        return clean + 25 / 255 * z

    camera = img_as_float(data.camera())[:, :, None]
    if smoke:
        crop = camera[200:264, 200:264]
        return {"camera 64x64 grey": (crop, noisy(crop, 0))}
    astronaut = img_as_float(data.astronaut())
    retina = resize(img_as_float(data.retina()), (2048, 2048), order=1, anti_aliasing=False)
    images = {
        "camera 512x512 grey": (camera, noisy(camera, 0)),
        "astronaut 512x512 colour": (astronaut, noisy(astronaut, 5)),
    }
    if large:
        images["retina 2048x2048 colour (4.2 MP)"] = (retina, noisy(retina, 10))
    return images


def energy(u: np.ndarray, f: np.ndarray) -> float:
    """E(u) = 1/2 ||u - f||^2 + weight * isotropic channelwise TV(u), float64 numpy."""
    u = u.astype(np.float64)
    dy = np.zeros_like(u)
    dx = np.zeros_like(u)
    dy[:-1] = u[1:] - u[:-1]
    dx[:, :-1] = u[:, 1:] - u[:, :-1]
    return 0.5 * float(((u - f) ** 2).sum()) + WEIGHT * float(np.sqrt(dy**2 + dx**2).sum())


def as_problem(
    f: np.ndarray,
    dtype: torch.dtype = torch.float32,
    tv: str = "isotropic",
    color: str = "channelwise",
) -> Problem:
    batch = torch.from_numpy(f.transpose(2, 0, 1).copy()).to(dtype)[None]
    return Problem(batch, WEIGHT, 1.0, tv, color, L2Fidelity())


def to_hwc(u: torch.Tensor) -> np.ndarray:
    return u[0].permute(1, 2, 0).double().numpy()


def best_time(run: Any, repeats: int) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def reference_energy(f: np.ndarray, tol: float) -> tuple[float, np.ndarray]:
    u, record = solve_rof(as_problem(f, torch.float64), max_iter=200000, tol=tol)
    assert record.converged, record
    return energy(to_hwc(u), f), to_hwc(u)


def chambolle_energies(f: np.ndarray, e_star: float, limit: int) -> int:
    """Count at which scikit-image's ``denoise_tv_chambolle(eps=0, channel_axis=-1)`` first
    reaches the target, predicted by replaying its iteration (Chambolle 2004, written here
    from the paper's update with scikit-image's step 1/4 and its order of operations) in torch
    float64 and measuring the energy after every step.

    ``max_num_iter=n`` returns ``f + D^T p_(n-1)``, ``p_0 = 0``,
    ``p_(k+1) = (p_k - tau g) / (1 + tau / weight |g|)``, ``g = D (f + D^T p_k)``, with D
    forward differences (zero at the last row and column). Every step is the same IEEE
    operation as scikit-image's, so the iterates agree bit for bit; the energy is summed in
    a different order, so the caller still confirms the count with scikit-image itself at
    ``n - 1`` and ``n``.
    """
    tau = 0.25
    image = torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1)))
    p = torch.zeros((2, *image.shape), dtype=torch.float64)
    g = torch.zeros_like(p)
    for count in range(1, limit + 1):
        # scikit-image's d: -(p0 + p1), then each component added back shifted by one.
        d = -p.sum(0)
        d[:, 1:, :] += p[0, :, :-1, :]
        d[:, :, 1:] += p[1, :, :, :-1]
        out = image + d
        dy = torch.zeros_like(out)
        dx = torch.zeros_like(out)
        dy[:, :-1] = out[:, 1:] - out[:, :-1]
        dx[:, :, :-1] = out[:, :, 1:] - out[:, :, :-1]
        e = 0.5 * float(((out - image) ** 2).sum()) + WEIGHT * float(
            torch.sqrt(dy**2 + dx**2).sum()
        )
        if (e - e_star) / e_star <= TARGET:
            return count
        g[0], g[1] = dy, dx
        norm = (g**2).sum(0)[None]
        np.sqrt(norm.numpy(), out=norm.numpy())  # numpy's sqrt: torch's differs by an ulp
        p -= tau * g
        p /= norm * (tau / WEIGHT) + 1.0
    raise RuntimeError(f"the replay did not reach the target in {limit} iterations")


def skimage_search_by_replay(
    f: np.ndarray, e_star: float, dtype: type = np.float32, repeats: int = 3
) -> tuple[int, float, int]:
    """First ``max_num_iter`` whose scikit-image result reaches the target, found exactly:
    the float64 replay predicts it, then scikit-image is run on ``f`` cast to ``dtype`` (it
    computes in its input's float type) at the prediction and one below, moving by one while
    they disagree. Returns the count, scikit-image's best of ``repeats`` seconds at that count
    (timed as tvdenoise is) and the replay's prediction."""
    from skimage.restoration import denoise_tv_chambolle

    given = np.ascontiguousarray(f, dtype=dtype)

    def run(n: int, times: int = 1) -> tuple[bool, float]:
        seconds, u = best_time(
            lambda: denoise_tv_chambolle(
                given, weight=WEIGHT, eps=0, max_num_iter=n, channel_axis=-1
            ),
            times,
        )
        return (energy(u, f) - e_star) / e_star <= TARGET, seconds

    predicted = chambolle_energies(f, e_star, 20000)
    n = predicted
    reached, _ = run(n)
    while not reached:
        n += 1
        reached, _ = run(n)
    while n > 1 and run(n - 1)[0]:
        n -= 1
    _, seconds = run(n, repeats)
    return n, seconds, predicted


def fgp(problem: Problem, tol: float, max_iter: int = 20000) -> int:
    """Beck-Teboulle fast gradient projection on the dual, with gradient restart; iterations
    to a relative primal-dual gap <= tol (checked every 10)."""
    f, weight = problem.f, problem.weight
    p = torch.zeros_like(gradient(f))
    r, t = p.clone(), 1.0
    for k in range(1, max_iter + 1):
        new = project_dual(
            r + gradient(f + divergence(r)) / 8.0, weight, "isotropic", "channelwise"
        )
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        if float(((r - new) * (new - p)).sum()) > 0:  # momentum points uphill: restart
            t, t_next = 1.0, 1.0
        r = new + ((t - 1) / t_next) * (new - p)
        p, t = new, t_next
        if k % 10 == 0:
            div_p = divergence(p)
            primal = problem.energy(f + div_p)
            if float((primal - L2Fidelity().dual(f, div_p)) / primal) <= tol:
                return k
    return max_iter


def per_iteration(problem: Problem, backend: str | None, iterations: int) -> float:
    if backend is None:
        run = lambda: solve_primal_dual(problem, max_iter=iterations, tol=0, check_every=10**9)  # noqa: E731
    else:
        run = lambda: solve_rof(  # noqa: E731
            problem, max_iter=iterations, tol=0, check_every=10**9, backend=backend
        )
    seconds, _ = best_time(run, 3)
    return seconds / iterations


def elementwise_unit(shape: tuple[int, ...]) -> float:
    n, c, h, w = shape
    a, b, out = (torch.rand(n * c * 2 * h * w) for _ in range(3))
    seconds, _ = best_time(lambda: [torch.add(a, b, out=out) for _ in range(20)], 5)
    return seconds / 20


def psnr(u: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((u - clean) ** 2)))


STAGES = textwrap.dedent(
    """
    import time, sys
    t0 = time.perf_counter()
    import torch, tvdenoise
    from tvdenoise.denoising import denoise
    t1 = time.perf_counter()
    image = tvdenoise.load_image(sys.argv[1])
    t2 = time.perf_counter()
    out = denoise(image.pixels, weight="auto")  # the command line's default
    t3 = time.perf_counter()
    tvdenoise.save_image(sys.argv[2], out, like=image, overwrite=True)
    t4 = time.perf_counter()
    print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
    """
)


def end_to_end(noisy: np.ndarray, repeats: int = 5) -> dict[str, float]:
    """Whole commands (best of ``repeats``) and the stages of one denoising command."""
    from PIL import Image

    folder = Path(tempfile.mkdtemp())
    path = folder / "image.png"
    Image.fromarray(np.clip(np.round(noisy[:, :, 0] * 255), 0, 255).astype(np.uint8)).save(path)

    def wall(command: list[str]) -> float:
        seconds, _ = best_time(lambda: subprocess.run(command, check=True, capture_output=True), 1)
        return seconds

    def best(command: list[str]) -> float:
        return min(wall(command) for _ in range(repeats))

    result = {
        "python": best([sys.executable, "-c", "pass"]),
        "import torch": best([sys.executable, "-c", "import torch"]),
        "tvdenoise image.png": best(
            [sys.executable, "-m", "tvdenoise", str(path), "--overwrite", "--quiet"]
        ),
    }
    runs = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", STAGES, str(path), str(folder / "out.png")],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append([float(x) for x in done.stdout.split()])
    stages = min(runs, key=sum)
    result.update(dict(zip(["import", "read", "solve", "write"], stages, strict=True)))
    return result


MEMORY = textwrap.dedent(
    """
    import sys, torch
    import tvdenoise
    from tvdenoise.solvers import native
    native.load()
    torch.set_num_threads(2)
    c, h, w = 3, int(sys.argv[1]), int(sys.argv[1])
    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec, so a
    # benchmark process holding large images would inflate it. Reset the peak to now first.
    before = status("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")
    f = torch.rand(c, h, w)
    options = {"tv": sys.argv[2]} if len(sys.argv) > 2 else {}
    u = tvdenoise.denoise(f, weight=0.1, max_iter=50, tol=0.0, **options)
    print((status("VmHWM") - before) / (c * h * w))
    """
)


def memory_per_pixel_channel(size: int, tv: str | None = None) -> float:
    """Peak memory of ``denoise`` (default model, or ``tv``) in a fresh process."""
    command = [sys.executable, "-c", MEMORY, str(size), *([tv] if tv else [])]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return float(done.stdout)


def default_model(args: argparse.Namespace) -> list[str]:
    """The default model (symmetric TV, vectorial) against forward isotropic TV, both fused,
    to the same relative gap; the default command end to end; peak memory of both."""
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    say(
        f"Default model (`tv='symmetric'`) against forward differences (`tv='isotropic'`), "
        f"both vectorial, fused rof kernel, weight {WEIGHT}, each stopped on its own relative "
        f"gap <= {TARGET:g}, best of {args.repeats} (2 threads, torch {torch.__version__}):"
    )
    say()
    say(
        "| image | isotropic: iterations, s, ms/it | symmetric: iterations, s, ms/it | time ratio |"
    )
    say("| --- | --- | --- | --- |")
    for name, (_, f) in noisy_images(args.smoke, not args.skip_4mp).items():
        cells = []
        seconds = {}
        for tv in ("isotropic", "symmetric"):
            problem = as_problem(f, tv=tv, color="vectorial")
            seconds[tv], (_, record) = best_time(
                lambda problem=problem: solve(problem, max_iter=20000, tol=TARGET), args.repeats
            )
            per = seconds[tv] / record.iterations * 1e3
            cells.append(f"{record.iterations}, {seconds[tv]:.3f}, {per:.2f}")
        ratio = seconds["symmetric"] / seconds["isotropic"]
        say(f"| {name} | {cells[0]} | {cells[1]} | {ratio:.2f}x |")
    say()
    size = 64 if args.smoke else 512 if args.skip_4mp else 2048
    memory = {tv: memory_per_pixel_channel(size, tv) for tv in ("symmetric", "isotropic")}
    say(
        f"Peak memory of `denoise` (float32, 3x{size}x{size}, vectorial): symmetric "
        f"{memory['symmetric']:.1f}, isotropic {memory['isotropic']:.1f} bytes per pixel-channel"
    )
    if not args.smoke:
        _, f = next(iter(noisy_images(False, False).values()))
        timings = end_to_end(f)
        say()
        say(
            "End to end, 512x512 grey PNG, default settings (weight auto, tv symmetric), best "
            "of 5 whole processes (s): " + ", ".join(f"{k} {v:.3f}" for k, v in timings.items())
        )
        extra = timings["tvdenoise image.png"] - timings["import torch"]
        say(f'Extra over `python -c "import torch"`: {extra:.3f} s')
        write_section(
            f"{SECTION} --default-model",
            [
                f"## Speed of the default model ({SECTION} --default-model, "
                f"{time.strftime('%Y-%m-%d')})",
                "",
                *lines,
            ],
            args.output,
        )
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="64x64 image, no file written")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-4mp", action="store_true", help="only the 512x512 images")
    parser.add_argument(
        "--default-model", action="store_true", help="only the default model's cost section"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.default_model:
        return {"default_model": default_model(args)}
    kernel = native.load()
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    say(f"Machine: {os.cpu_count()} CPUs, 2 threads, shared; torch {torch.__version__};")
    say(
        "fused kernel: "
        + (
            f"{kernel.path.name} ({kernel.path.stat().st_size // 1024} kB, compiled in "
            f"{kernel.compile_seconds:.2f} s in this process)"
            if kernel
            else "not available"
        )
    )
    say()
    results: dict[str, Any] = {"images": {}}
    images = noisy_images(args.smoke, not args.skip_4mp)
    say(
        "| image | E* gap | tvdenoise rof (float32): iterations, s | gap reached "
        "| scikit-image float32: iterations, s | speed-up "
        "| scikit-image float64: iterations, s | speed-up | load |"
    )
    say("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, (clean, f) in images.items():
        large = f.size > 4e6
        e_star, u_star = reference_energy(f, 1e-6 if large or args.smoke else 1e-7)
        problem = as_problem(f)
        seconds, (u, record) = best_time(
            lambda problem=problem: solve(problem, max_iter=20000, tol=TARGET), args.repeats
        )
        gap = (energy(to_hwc(u), f) - e_star) / e_star
        sk_iterations, sk_seconds, predicted = skimage_search_by_replay(
            f, e_star, np.float32, args.repeats
        )
        sk64_iterations, sk64_seconds, _ = skimage_search_by_replay(
            f, e_star, np.float64, args.repeats
        )
        estimated = "" if predicted == sk64_iterations else f" (replay said {predicted})"
        say(
            f"| {name} | {1e-6 if large or args.smoke else 1e-7:g} | "
            f"{record.iterations}, {seconds:.3f} | {gap:.2e} | "
            f"{sk_iterations}, {sk_seconds:.2f} | {sk_seconds / seconds:.0f}x | "
            f"{sk64_iterations}, {sk64_seconds:.2f}{estimated} | "
            f"{sk64_seconds / seconds:.0f}x | {load_average()} |"
        )
        results["images"][name] = {
            "gap": gap,
            "seconds": seconds,
            "skimage_seconds": sk_seconds,
            "skimage_iterations": sk_iterations,
            "skimage64_seconds": sk64_seconds,
            "skimage64_iterations": sk64_iterations,
            "replay_iterations": predicted,
            "clean": clean,
            "u_star": u_star,
            "f": f,
        }
    say()

    # Per-iteration cost in units of one elementwise pass over the dual variable.
    say(
        "| image | unit (add over dual) | rof fused: ms/it, units | rof torch ops: ms/it, units "
        "| generic chambolle_pock: ms/it, units | gap check (one sweep), % of run: k = 10 "
        f"| k = {FUSED_CHECK_EVERY} (default) |"
    )
    say("| --- | --- | --- | --- | --- | --- | --- |")
    for name, entry in results["images"].items():
        problem = as_problem(entry["f"])
        unit = elementwise_unit(tuple(problem.f.shape))
        fused = per_iteration(problem, "native", 200) if kernel else math.nan
        eager = per_iteration(problem, "torch", 20)
        generic = per_iteration(problem, None, 20)
        cost = check_cost(problem) if kernel else math.nan
        checks = [cost / (every + cost) for every in (10, FUSED_CHECK_EVERY)]
        say(
            f"| {name} | {unit * 1e3:.3f} ms | {fused * 1e3:.2f}, {fused / unit:.1f} | "
            f"{eager * 1e3:.2f}, {eager / unit:.1f} | {generic * 1e3:.2f}, {generic / unit:.1f} | "
            f"{100 * checks[0]:.1f} % | {100 * checks[1]:.1f} % |"
        )
        entry["units"] = fused / unit
    say()
    if args.smoke:
        return results

    # Algorithms to the same gap (each stopped on its own relative primal-dual gap <= 1e-4).
    say("| image | algorithm | iterations to gap 1e-4 | seconds |")
    say("| --- | --- | --- | --- |")
    for name, entry in list(results["images"].items())[:2]:
        compare(name, as_problem(entry["f"]), say)
    say()

    # Default tolerance: loosest tol whose PSNR is within 0.01 dB of the converged result.
    say("| image | PSNR converged | " + " | ".join(f"tol {t:g}" for t in TOLERANCES) + " |")
    say("| --- | --- | " + " | ".join("---" for _ in TOLERANCES) + " |")
    for name, entry in results["images"].items():
        reference = psnr(entry["u_star"], entry["clean"])
        cells = []
        for tol in TOLERANCES:
            u, _ = solve(as_problem(entry["f"]), max_iter=20000, tol=tol)
            cells.append(f"{psnr(to_hwc(u), entry['clean']) - reference:+.4f} dB")
        say(f"| {name} | {reference:.3f} dB | " + " | ".join(cells) + " |")
    say()

    timings = end_to_end(next(iter(results["images"].values()))["f"])
    say(
        "End to end, 512x512 grey PNG, default settings (weight auto), best of 5 whole "
        "processes (s): " + ", ".join(f"{k} {v:.3f}" for k, v in timings.items())
    )
    extra = timings["tvdenoise image.png"] - timings["import torch"]
    say(f'Extra over `python -c "import torch"`: {extra:.3f} s')
    memory = memory_per_pixel_channel(512 if args.skip_4mp else 2048)
    say(
        f"Peak memory of the default solve (float32, 3 channels, vectorial): {memory:.1f} bytes "
        "per pixel-channel (RSS peak minus RSS before the image was made)"
    )
    write_section(
        SECTION,
        [f"## Speed ({SECTION}, {time.strftime('%Y-%m-%d')}, commit {commit()})", "", *lines],
        args.output,
    )
    return results


def compare(name: str, problem: Problem, say: Any) -> None:
    """Algorithms to the same relative primal-dual gap, each stopped by its own check."""
    variants = {
        "Chambolle-Pock generic (tau 0.5, gamma 0.25, torch ops)": lambda: solve_primal_dual(
            problem, max_iter=20000, tol=TARGET
        ),
        "Chambolle-Pock rof (tau 0.25, gamma 0.25, fused) [auto]": lambda: solve_rof(
            problem, max_iter=20000, tol=TARGET
        ),
        "Chambolle-Pock rof (tau 0.25, gamma 0.5, fused)": lambda: solve_rof(
            problem, max_iter=20000, tol=TARGET, gamma=0.5
        ),
        "Chambolle-Pock rof (tau 1, gamma 0.25, fused)": lambda: solve_rof(
            problem, max_iter=20000, tol=TARGET, tau=1.0
        ),
    }
    for label, run in variants.items():
        seconds, (_, record) = best_time(run, 1)
        say(f"| {name} | {label} | {record.iterations} | {seconds:.3f} |")
    seconds, iterations = best_time(lambda: fgp(problem, TARGET), 1)
    say(f"| {name} | FISTA on the dual (FGP), restart, torch ops | {iterations} | {seconds:.3f} |")


TOLERANCES = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4)


def check_cost(problem: Problem) -> float:
    """The fused gap check (one measure sweep) in units of one fused iteration, each timed
    on its own (best of 20), so the share at any k follows without timing whole runs."""
    from tvdenoise.solvers.rof import _NativeIteration

    f = problem.f.contiguous()
    runner = _NativeIteration(
        problem, f.clone(), f.new_zeros((*f.shape[:2], 2, *f.shape[2:])), native.load()
    )
    step = [0.25, 0.5]
    runner.run(20, step, 0.25)
    iteration, _ = best_time(lambda: runner.run(10, list(step), 0.25), 20)
    check, _ = best_time(lambda: runner.measure(problem, 0.9), 20)
    return check / (iteration / 10)


if __name__ == "__main__":
    main()
