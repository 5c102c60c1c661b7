"""Rendered ground truth against an independent ray caster (trimesh) on the posed mesh."""

import numpy as np
import pytest
import trimesh

from backend.world.clip import render_world_clip


@pytest.mark.parametrize("seed", [1, 11, 21, 3])
def test_depth_and_canonical_maps_match_the_mesh(seed: int) -> None:
    obj, cameras, times, render = render_world_clip(seed, views=2, frames=2, size=64, supersample=1)
    rng = np.random.default_rng(seed)
    for vi, camera in enumerate(cameras):
        for fi, t in enumerate(times):
            mesh = trimesh.Trimesh(obj.vertices_at(t), obj.faces, process=False)
            origin, dirs = camera.pixel_rays()
            mask = render.mask[vi, fi]
            rows, cols = np.nonzero(mask)
            pick = rng.choice(len(rows), size=min(150, len(rows)), replace=False)
            rows, cols = rows[pick], cols[pick]
            ray_dirs = dirs[rows, cols]
            hits, ray_index, tri_index = mesh.ray.intersects_location(
                np.repeat(origin[None], len(rows), 0), ray_dirs, multiple_hits=True)
            # nearest hit per ray
            distance = np.linalg.norm(hits - origin, axis=1)
            nearest = {}
            for h, r, tri, d in zip(hits, ray_index, tri_index, distance, strict=True):
                if r not in nearest or d < nearest[r][2]:
                    nearest[r] = (h, tri, d)
            assert len(nearest) >= 0.97 * len(rows), "covered pixels see the mesh"
            agree = 0
            for r, (hit, tri, _) in nearest.items():
                depth = camera.to_camera(hit)[2]
                bary = trimesh.triangles.points_to_barycentric(mesh.triangles[[tri]], hit[None])[0]
                canonical = bary @ obj.canonical_vertices[obj.faces[tri]]
                ok_depth = abs(depth - render.depth[vi, fi, rows[r], cols[r]]) < 1e-3
                ok_canon = np.abs(canonical - render.canonical[vi, fi, rows[r], cols[r]]).max() < 1e-3
                agree += ok_depth and ok_canon
            # pixels whose centre grazes an edge may resolve to a neighbour at the same depth
            assert agree >= 0.97 * len(nearest)
            # empty pixels see nothing
            empty_r, empty_c = np.nonzero(~mask)
            pick = rng.choice(len(empty_r), size=150, replace=False)
            hit_any = mesh.ray.intersects_any(np.repeat(origin[None], 150, 0), dirs[empty_r[pick], empty_c[pick]])
            assert hit_any.mean() < 0.03


def test_alpha_and_mask_agree_and_background_is_white() -> None:
    _, _, _, render = render_world_clip(1, views=1, frames=2, size=64, supersample=2)  # a solid blob
    coverage_iou = ((render.alpha > 0.5) & render.mask).sum() / ((render.alpha > 0.5) | render.mask).sum()
    assert coverage_iou > 0.9
    frames = render.composite()
    assert (frames[~(render.alpha > 0)] == 255).all()
    assert (render.depth[~render.mask] == 0).all() and (render.depth[render.mask] > 0).all()
