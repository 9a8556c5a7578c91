"""Print size: which coarse-to-fine scales are evaluated in tiles, with what optimizer and
budget, and the objectives that do it.

A scale is tiled when its untiled estimate (memory.py) exceeds the memory budget
(--memory-budget, default MEMORY_BUDGET_GB), or when its long side exceeds --tile-size.
Its core is then --tile-size, or the largest of CORES whose tiled estimate fits.

A tiled scale is optimised with Adam, whatever --optimizer says. Why: SciPy's L-BFGS-B
holds (2 m + 11) float64 image-sized arrays (its history, working arrays, x, g and the
bounds): 13.4 GB at 3840 x 2880 with m = 20, and 3.7 GB even with m = 1, against 1.3 GB
for Adam's x, m and v and the Evaluator's copies. A tiled scale starts from the previous
scale's result, where the large strokes are already made and only the detail is left,
which is what crowsonkb's tool uses Adam for at every scale. Its learning rate there is
TILED_LEARNING_RATE: --learning-rate's 10 grey levels per step would first scatter the
upsampled picture (Adam's first steps move every pixel by about the rate).

Budget: a scale whose long side is above settings.AUTO_ABOVE runs its iterations times
AUTO_ABOVE / long side (at least MIN_ITERATIONS): an evaluation there costs (long / 1024)^2
of one at 1024 px, and each such scale only adds the detail its doubling of the size
brings (docs/print-size.md measures the time and the look).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

from . import memory, objective
from .errors import UsageError
from .settings import AUTO_ABOVE
from .tiled_objective import TiledObjective
from .tiling import DEFAULT_CORE, TileGraph

MEMORY_BUDGET_GB = 6.0
# Core sides tried, largest first: the halos cost less on a larger core (VGG-19 to relu5_1:
# 150 px of halo on a 1024 core is 1.31 x its pixels, on 512 1.67 x).
CORES = (2048, 1536, 1024, 768, 512, 384, 256)
# The estimate is within about 10% of the measured peak (docs/print-size.md): the tiles are
# chosen to fit in this share of the budget, so that the peak stays under it.
BUDGET_MARGIN = 0.9
TILED_OPTIMIZER = "adam"
TILED_LEARNING_RATE = 2.0
MIN_ITERATIONS = 20


def scale_iterations(iterations: int, size: tuple) -> int:
    """The budget of a scale of (height, width) `size` for a scale budget of `iterations`."""
    long_side = max(size)
    if long_side <= AUTO_ABOVE:
        return iterations
    return max(min(iterations, MIN_ITERATIONS), int(round(iterations * AUTO_ABOVE / long_side)))


def untiled_bytes(network, size, settings, layers, guided):
    opt = settings.optimizer
    return memory.estimate_peak_bytes(network, size[0], size[1], opt.optimizer, opt.lbfgs_corrections, layers, guided)


def tiled_bytes(network, size, core, layers, guided, content_layers=("relu4_2", "relu5_2")):
    return sum(memory.estimate_tiled_parts(network, size[0], size[1], core, layers, guided, TILED_OPTIMIZER,
                                           content_layers=content_layers).values())


def budget_bytes(settings) -> int:
    return int(settings.optimizer.memory_budget * 2**30)


def choose_core(network, size, settings, layers, guided=0) -> int | None:
    """The core side of a scale of (height, width) `size`, or None when it is not tiled.
    Raises UsageError when not even the smallest core fits the budget."""
    budget, tile_size = budget_bytes(settings), settings.optimizer.tile_size
    if tile_size is None and untiled_bytes(network, size, settings, layers, guided) <= budget:
        return None
    if tile_size is not None:
        return None if max(size) <= tile_size else tile_size
    if network.tile_halo(network.deepest(layers)) is None:
        raise UsageError(f"a {size[1]}x{size[0]} image needs about "
                         f"{memory.format_bytes(untiled_bytes(network, size, settings, layers, guided))} with "
                         f"{network.name}, above the memory budget of {memory.format_bytes(budget)}, and this network "
                         "cannot be evaluated in tiles; raise --memory-budget or use a smaller --width")
    for core in CORES:
        if tiled_bytes(network, size, core, layers, guided) <= BUDGET_MARGIN * budget:
            return core
    # Past the budget even in the smallest tiles (the whole image's own arrays grow with it:
    # at 7680 x 5760 the image, its gradients, Adam's moments and the content targets take
    # about 7 GB): the largest core up to DEFAULT_CORE that the machine can hold, if any
    # (checks.check_memory says that the run goes past the budget). Not larger: the run
    # stays as near the budget as the halos' cost allows (1.3 x the pixels at 1024). The
    # budget chooses tiles; only the machine's memory refuses.
    available = memory.available_bytes()
    for core in CORES if available else ():
        if core <= DEFAULT_CORE and tiled_bytes(network, size, core, layers, guided) <= memory.WARN_FRACTION * available:
            return core
    need = tiled_bytes(network, size, CORES[-1], layers, guided)
    raise UsageError(f"a {size[1]}x{size[0]} image needs about {memory.format_bytes(need)} even in tiles of "
                     f"{CORES[-1]} px, above the memory budget of {memory.format_bytes(budget)} and "
                     f"{memory.format_bytes(int(memory.WARN_FRACTION * (available or 0)))} of this machine's memory; "
                     "use a smaller --width")


def plan(stages, network, settings, layers, guided=0):
    """`stages` (coarse_to_fine.Stage) with each one's tile core, optimizer and budget."""
    out = []
    # The largest scale first: a refusal names the output's size, not a coarser scale's.
    cores = {stage.index: choose_core(network, stage.size, settings, layers, guided) for stage in reversed(stages)}
    for stage in stages:
        core = cores[stage.index]
        iterations = scale_iterations(stage.iterations, stage.size)
        if core is None:
            out.append(dataclasses.replace(stage, iterations=iterations))
        else:
            out.append(dataclasses.replace(stage, iterations=iterations, core=core, optimizer=TILED_OPTIMIZER,
                                           learning_rate=TILED_LEARNING_RATE))
    return out


def peak_estimate(stages, network, settings, layers, guided=0) -> int:
    """The largest estimate over the planned stages, in bytes (the preflight's)."""
    return max(untiled_bytes(network, s.size, settings, layers, guided) if s.core is None
               else tiled_bytes(network, s.size, s.core, layers, guided) for s in stages)


class Objectives:
    """A `make_objective` for coarse_to_fine.run: the untiled Objective of a problem, or a
    TiledObjective for the sizes in `cores` ({(height, width): core}), all tiled ones
    sharing one TileGraph (built at the first, closed by `close`). `on_tile(size, fraction)`:
    told after each tile (TiledObjective.on_tile) of an evaluation at `size`."""

    def __init__(self, cores: dict, untiled=None, config=None, on_tile=None):
        self.cores, self.config, self.on_tile = dict(cores), config, on_tile
        self.untiled = untiled or objective.Objective.for_problem
        self.tile_graph: TileGraph | None = None
        self.built = 0

    def __call__(self, problem):
        core = self.cores.get(tuple(problem.content.shape[:2]))
        if core is None:
            return self.untiled(problem)
        tiled = TiledObjective(problem, core=core, config=self.config, tile_graph=self.tile_graph)
        if self.on_tile is not None:
            size, report = tuple(problem.content.shape[:2]), self.on_tile
            tiled.on_tile = lambda fraction: report(size, fraction)
        if self.tile_graph is None:
            self.tile_graph, tiled._own_graph = tiled.tile_graph, False
            self.built += 1
        return contextlib.closing(tiled)

    def close(self):
        if self.tile_graph is not None:
            self.tile_graph.close()
            self.tile_graph = None


def describe(stages) -> str:
    """The coarse-to-fine line's description of a stage list, tiles included."""
    parts = []
    for s in stages:
        text = f"{s.size[1]}x{s.size[0]} ({s.iterations} it"
        if s.core is not None:
            tiles = math.ceil(s.size[0] / s.core) * math.ceil(s.size[1] / s.core)
            text += f", {s.optimizer}, ~{tiles} tiles of {s.core} px"
        parts.append(text + ")")
    return ", ".join(parts)
