"""Occlusion: the drop of the score when a patch is covered."""

from __future__ import annotations

import numpy as np

from convlens.attribution.base import Look, Method, MethodResult, Param, number, whole
from convlens.attribution.perturbations import Patches, Stack, starts


class Occlusion(Method):
    """Occlusion (Zeiler & Fergus 2014): the drop of the score when a ``patch`` x ``patch`` square,
    moved by ``stride`` pixels, is filled with ``fill``. A pixel's value is the mean drop of the
    patches covering it (signed: a patch can raise the score). raw: the (B, rows, cols) drops.
    """

    name = "occlusion"
    params = {
        "patch": Param(None, whole(1, "side // 8")),
        "stride": Param(None, whole(1, "patch // 2")),
        "fill": Param(0.5, number(0, 1)),
    }
    look = Look("Occlusion", "#999933")
    reference = "Zeiler & Fergus 2014"
    cost = "one forward pass per patch position"

    @staticmethod
    def patch_and_stride(params: dict, side: int) -> tuple[int, int]:
        patch = params["patch"] or max(1, side // 8)
        return patch, params["stride"] or max(1, patch // 2)

    def passes(self, params, side):
        patch, stride = self.patch_and_stride(params, side)
        return float(len(starts(side, min(patch, side), stride)) ** 2 + 1)  # the patches, and the image itself

    def run(self, context):
        params = context.params(self)
        x = context.x
        patch, stride = self.patch_and_stride(params, min(x.shape[1:3]))
        patches = Patches(x, patch, stride, params["fill"])
        scores = context.explainer.scores(Stack([x]), context.targets)
        drops = scores - context.explainer.scores(patches, context.targets)  # (B, n)
        total = np.zeros(x.shape[:3])
        covered = np.zeros(x.shape[1:3])
        for j, (r, c) in enumerate(patches.corners):
            total[:, r : r + patches.size[0], c : c + patches.size[1]] += drops[:, j, None, None]
            covered[r : r + patches.size[0], c : c + patches.size[1]] += 1
        maps = (total / np.maximum(covered, 1)).astype(np.float32)
        raw = drops.reshape(len(x), len(patches.rows), len(patches.cols)).astype(np.float32)
        return MethodResult(maps, raw, signed=True)
