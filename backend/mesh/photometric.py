"""Photometric refinement of a tracked mesh: slide its vertices along the surface until each footage view,
at this frame, shows the colours the mesh carried at frame 0.

Registration onto each frame's reconstructed surface fixes where the surface is, not where on it each vertex
belongs: most of the tracking error is sliding along the surface (`benchmarks/RESULTS.md`, row 14). The
footage holds that missing information wherever the object is textured. Points sampled on every face keep
the colour the frame-0 footage gave them; at each frame, a few Gauss-Newton-like (L-BFGS) steps move the
vertices, tangentially only and smoothly, so that the footage where those points now project agrees.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from backend.mesh.projection import Footage, project_footage
from backend.mesh.track import keep_upright
from backend.render.raster import rasterize

SAMPLES_PER_FACE = 4
BLUR_PX = 1.0  # footage is blurred so a point a pixel or two off still sees which way the colour lies
MIN_CONFIDENCE = 0.2  # a point's frame-0 colour counts where cameras saw it at least this squarely (cos⁴ summed)


def blurred(frames: np.ndarray, sigma: float = BLUR_PX) -> torch.Tensor:
    """(V, 3, H, W) float images in [0, 1], Gaussian-blurred."""
    images = torch.as_tensor(frames, dtype=torch.float32).permute(0, 3, 1, 2) / 255
    if sigma <= 0:
        return images
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    kernel = torch.outer(taps, taps) / taps.sum() ** 2
    padded = F.pad(images, (radius,) * 4, mode="replicate")
    return F.conv2d(padded, kernel.expand(3, 1, -1, -1).contiguous(), groups=3)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    corners = vertices[faces]
    face_normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), face_normals.repeat_interleave(3, dim=0))
    return F.normalize(normals, dim=1)


class PhotometricRefiner:
    """Refines tracked positions of the mesh (``vertices`` at frame 0, ``faces``) against each frame's footage."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, footage: Footage, steps: int = 20,
                 smoothness: float = 1.0, stillness: float = 1.0, seed: int = 0) -> None:
        self.faces = torch.as_tensor(np.asarray(faces), dtype=torch.long)
        self.steps, self.smoothness, self.stillness = steps, smoothness, stillness
        rng = np.random.default_rng(seed)
        count = len(self.faces) * SAMPLES_PER_FACE
        root, second = np.sqrt(rng.random(count)), rng.random(count)  # uniform on each triangle
        self.barycentric = torch.as_tensor(np.stack([1 - root, root * (1 - second), root * second], 1), dtype=torch.float32)
        self.sample_face = torch.arange(len(self.faces)).repeat_interleave(SAMPLES_PER_FACE)
        rest = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
        self.size = float(torch.linalg.norm(rest.max(0).values - rest.min(0).values))
        points, normals = self._points(rest), self._face_normals(rest)
        soft = Footage(footage.cameras, (blurred(footage.frames).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8),
                       footage.mattes)
        colour, weight = project_footage(points, normals, np.asarray(vertices), np.asarray(faces), soft)
        self.known = weight >= MIN_CONFIDENCE
        self.reference = colour[self.known] / weight[self.known, None]
        edges = np.concatenate([np.asarray(faces)[:, [0, 1]], np.asarray(faces)[:, [1, 2]], np.asarray(faces)[:, [2, 0]]])
        edges = np.unique(np.sort(edges, axis=1), axis=0)
        self.edges = torch.as_tensor(np.concatenate([edges, edges[:, ::-1]]), dtype=torch.long)  # both directions
        self.previous: torch.Tensor | None = None  # the last frame refined
        self.degree = torch.bincount(self.edges[:, 0], minlength=len(rest)).float()[:, None]

    def _laplacian(self, values: torch.Tensor) -> torch.Tensor:
        """Graph Laplacian (degree minus neighbours) applied to per-vertex ``values``."""
        neighbours = torch.zeros_like(values).index_add_(0, self.edges[:, 0], values[self.edges[:, 1]])
        return self.degree * values - neighbours

    def _points(self, vertices: torch.Tensor) -> torch.Tensor:
        return (vertices[self.faces[self.sample_face]] * self.barycentric[..., None]).sum(dim=1)

    def _face_normals(self, vertices: torch.Tensor) -> torch.Tensor:
        corners = vertices[self.faces[self.sample_face]]
        return F.normalize(torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), dim=1)

    def refine(self, vertices: np.ndarray, footage: Footage) -> np.ndarray:
        """``vertices`` (N, 3) moved along their surface to agree with ``footage`` (this frame's views)."""
        if self.steps <= 0 or not bool(self.known.any()):
            return vertices
        start = torch.as_tensor(vertices, dtype=torch.float32)
        images = blurred(footage.frames)
        normals = vertex_normals(start, self.faces)
        tolerance = 0.015 * self.size
        points0, face_normals = self._points(start)[self.known], self._face_normals(start)[self.known]
        views = []
        for view, camera in enumerate(footage.cameras):  # who sees which point is fixed for the frame
            nearest = rasterize(start, self.faces, camera)
            projection = torch.as_tensor(camera.projection(), dtype=torch.float32)
            pixel = torch.cat([points0, torch.ones(len(points0), 1)], 1) @ projection.T
            depth = pixel[:, 2].clamp_min(1e-6)
            x, y = pixel[:, 0] / depth, pixel[:, 1] / depth
            inside = (x >= 0) & (x < camera.width) & (y >= 0) & (y < camera.height) & (pixel[:, 2] > 0)
            col, row = x.clamp(0, camera.width - 1).long(), y.clamp(0, camera.height - 1).long()
            visible = inside & nearest.mask[row, col] & ((nearest.depth[row, col] - pixel[:, 2]).abs() < tolerance)
            towards = F.normalize(torch.as_tensor(camera.center, dtype=torch.float32)[None] - points0, dim=1)
            weight = (face_normals * towards).sum(1).clamp_min(0) ** 2 * visible.float()
            if weight.sum() > 0:
                views.append((projection, images[view:view + 1], weight, camera.width, camera.height))
        if not views:
            self.previous = start
            return vertices
        total = sum(float(v[2].sum()) for v in views)
        offset = torch.zeros_like(start, requires_grad=True)
        optimiser = torch.optim.LBFGS([offset], lr=1.0, max_iter=self.steps, line_search_fn="strong_wolfe")

        def loss_fn() -> torch.Tensor:
            optimiser.zero_grad()
            raw = offset * self.size
            moved = start + raw - (raw * normals).sum(1, keepdim=True) * normals  # slide only along the surface
            points = self._points(moved)[self.known]
            data = torch.zeros(())
            for projection, image, weight, width, height in views:
                pixel = torch.cat([points, torch.ones(len(points), 1)], 1) @ projection.T
                depth = pixel[:, 2].clamp_min(1e-6)
                grid = torch.stack([pixel[:, 0] / depth / width * 2 - 1, pixel[:, 1] / depth / height * 2 - 1], -1)
                seen = F.grid_sample(image, grid[None, None], mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0].T
                data = data + (weight * ((seen - self.reference) ** 2).sum(1)).sum()
            loss = data / total + self.smoothness * (self._laplacian(offset) ** 2).sum(1).mean() \
                + self.stillness * (offset ** 2).sum(1).mean()
            loss.backward()
            return loss

        optimiser.step(loss_fn)
        with torch.no_grad():
            raw = offset * self.size
            moved = start + raw - (raw * normals).sum(1, keepdim=True) * normals
        previous = None if self.previous is None else self.previous.numpy()
        self.previous = torch.as_tensor(keep_upright(start.numpy(), moved.numpy(), self.faces.numpy(), previous))
        return self.previous.numpy()
