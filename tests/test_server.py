"""The backend service as the add-on sees it: a real `serve` process on loopback, real world clips.

Life cycle and streaming, resuming events, cancel within 2 s, kill -9 and restart, tokens, and bad
inputs that must each get a clear 4xx while the server keeps serving.
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import av
import httpx
import numpy as np
import psutil
import pytest
from PIL import Image

from backend.client import BackendError, Client
from backend.io.footage import read_footage
from backend.io.video import write_mask_clip, write_mp4
from backend.protocol import SHAPE_HEADER, Event, Limits
from backend.server.validation import RequestError, check_request
from conftest import REPO, Backend, run_backend, write_turned


def sse_events(client: httpx.Client, url: str, headers: dict, last_id: int | None = None, limit: int | None = None):
    """Parsed server-sent events, in order; stops after ``limit`` events (dropping the connection) or the end."""
    headers = {**headers, **({"Last-Event-ID": str(last_id)} if last_id is not None else {})}
    events = []
    with client.stream("GET", url, headers=headers, timeout=120) as response:
        assert response.status_code == 200
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(":"):
                continue
            if line == "":
                if fields:
                    event = json.loads(fields["data"])
                    assert int(fields["id"]) == event["id"] and fields["event"] == event["type"]
                    events.append(event)
                    fields = {}
                    if limit is not None and len(events) >= limit:
                        break
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
    return events


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("server") / "clip"
    done = run_backend("world", "--seed", "1000003", "--views", "3", "--frames", "6", "--size", "64", "--out", str(folder))
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory):
    server = Backend(tmp_path_factory.mktemp("jobs"))
    yield server
    server.stop()


def create(client: httpx.Client, backend: Backend, **request) -> dict:
    response = client.post(f"{backend.url}/jobs", json=request, headers=backend.headers)
    assert response.status_code == 201, response.text
    return response.json()


def wait_for(client: httpx.Client, backend: Backend, job_id: str, kind: str, count: int = 1) -> list[dict]:
    """Follow a job's events until ``count`` events of ``kind`` have arrived."""
    seen = []
    for event in _follow(client, backend, job_id):
        seen.append(event)
        if sum(e["type"] == kind for e in seen) >= count:
            return seen
    raise AssertionError(f"the job ended before {count} {kind} event(s): {[e['type'] for e in seen]}")


def _follow(client: httpx.Client, backend: Backend, job_id: str):
    headers = backend.headers
    with client.stream("GET", f"{backend.url}/jobs/{job_id}/events", headers=headers, timeout=300) as response:
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "" and fields:
                yield json.loads(fields["data"])
                fields = {}
            elif line and not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value


def test_job_life_cycle_streams_frames_in_order_and_resumes(backend: Backend, clip: Path) -> None:
    with httpx.Client() as client:
        job = create(client, backend, clip=str(clip), quality="preview", stride=2)
        events_url = f"{backend.url}/jobs/{job['id']}/events"
        first = sse_events(client, events_url, backend.headers, limit=4)  # then the connection drops
        rest = sse_events(client, events_url, backend.headers, last_id=first[-1]["id"])
        events = first + rest
        assert [e["id"] for e in events] == list(range(len(events)))  # no gap, no repeat across the reconnect
        kinds = [e["type"] for e in events]
        assert kinds[:2] == [Event.QUEUED, Event.STARTED] and kinds[-1] == Event.DONE
        frames = [e for e in events if e["type"] == Event.FRAME]
        assert [e["frame"] for e in frames] == list(range(6))
        assert kinds.index(Event.MESH) < kinds.index(Event.FRAME)  # mesh first, then frames as they finish
        # once every frame is tracked the texture is repainted from all of them
        assert kinds.count(Event.TEXTURE) == 1 and len(kinds) - 1 - kinds[::-1].index(Event.FRAME) < kinds.index(Event.TEXTURE)
        fractions = [e["fraction"] for e in events if "fraction" in e]
        assert fractions == sorted(fractions) and 0.9 < fractions[-1] <= 1.0
        stages = [e["stage"] for e in events if e["type"] == Event.STAGE]
        assert stages[:4] == ["decode", "lrm_lim", "fit", "marching_cubes"] and "tracking" in stages

        status = client.get(f"{backend.url}/jobs/{job['id']}", headers=backend.headers).json()
        assert status["state"] == "done" and status["frames_done"] == 6
        mesh = np.load(io.BytesIO(client.get(f"{backend.url}/jobs/{job['id']}/mesh", headers=backend.headers).content))
        n = len(mesh["vertices"])
        for index in range(6):
            response = client.get(f"{backend.url}/jobs/{job['id']}/frames/{index}", headers=backend.headers)
            assert response.headers[SHAPE_HEADER] == f"{n},3"
            vertices = np.frombuffer(response.content, dtype="<f4").reshape(n, 3)
            if index == 0:
                np.testing.assert_array_equal(vertices, mesh["vertices"])
            assert np.isfinite(vertices).all()
        texture = client.get(f"{backend.url}/jobs/{job['id']}/texture", headers=backend.headers)
        assert texture.content[:8] == b"\x89PNG\r\n\x1a\n"
        manifest = client.get(f"{backend.url}/jobs/{job['id']}/files/manifest.json", headers=backend.headers).json()
        assert manifest["frame_count"] == 6 and manifest["keyframes"] == [0, 2, 4, 5]
        listed = client.get(f"{backend.url}/jobs", headers=backend.headers).json()
        assert job["id"] in [j["id"] for j in listed]


def test_retime_streams_sub_frame_in_betweens(backend: Backend, clip: Path) -> None:
    with httpx.Client() as client:
        job = create(client, backend, clip=str(clip), quality="preview", frame_start=1, frame_end=4, retime=2, fit_steps=0)
        events = sse_events(client, f"{backend.url}/jobs/{job['id']}/events", backend.headers)
        positions = [e["position"] for e in events if e["type"] == Event.FRAME]
        assert positions == [0.0, 0.5, 1.0, 1.5, 2.0]  # 3 input frames, an in-between after each
        assert events[-1]["type"] == Event.DONE
        assert "fit" not in [e["stage"] for e in events if e["type"] == Event.STAGE]  # the request turned it off


def test_cancel_stops_a_running_job_within_two_seconds(backend: Backend, clip: Path) -> None:
    with httpx.Client() as client:
        job = create(client, backend, clip=str(clip), quality="final", retime=4)
        wait_for(client, backend, job["id"], Event.FRAME)
        waiting = create(client, backend, clip=str(clip), quality="preview")  # FIFO: one job at a time
        assert client.get(f"{backend.url}/jobs/{waiting['id']}", headers=backend.headers).json()["state"] == "queued"
        assert client.post(f"{backend.url}/jobs/{waiting['id']}/cancel", headers=backend.headers).json()["state"] == "cancelled"
        started = time.monotonic()
        response = client.post(f"{backend.url}/jobs/{job['id']}/cancel", headers=backend.headers)
        elapsed = time.monotonic() - started
        assert response.status_code == 200 and response.json()["state"] == "cancelled", response.text
        assert elapsed < 2.0
        events = sse_events(client, f"{backend.url}/jobs/{job['id']}/events", backend.headers)
        assert events[-1]["type"] == Event.CANCELLED and events[-1]["frames"] >= 1
        kept = client.get(f"{backend.url}/jobs/{job['id']}/frames/0", headers=backend.headers)
        assert kept.status_code == 200  # finished frames stay
        again = client.post(f"{backend.url}/jobs/{job['id']}/cancel", headers=backend.headers)
        assert again.status_code == 409


def test_killed_backend_restarts_with_an_honest_state(tmp_path: Path, clip: Path) -> None:
    jobs = tmp_path / "jobs"
    server = Backend(jobs)
    try:
        with httpx.Client() as client:
            finished = create(client, server, clip=str(clip), quality="preview", frame_end=2, fit_steps=0)
            assert sse_events(client, f"{server.url}/jobs/{finished['id']}/events", server.headers)[-1]["type"] == Event.DONE
            job = create(client, server, clip=str(clip), quality="final", retime=4)
            wait_for(client, server, job["id"], Event.FRAME, count=2)
            worker = [p for p in psutil.Process(server.process.pid).children(recursive=True)]
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait()
            _, alive = psutil.wait_procs(worker, timeout=5)
            assert not alive, "the worker outlived its server"
    finally:
        server.stop()
    restarted = Backend(jobs)
    try:
        with httpx.Client() as client:
            status = client.get(f"{restarted.url}/jobs/{job['id']}", headers=restarted.headers).json()
            assert status["state"] == "failed" and "stopped" in status["error"]
            assert status["frames_done"] >= 2
            for index in range(status["frames_done"]):
                frame = client.get(f"{restarted.url}/jobs/{job['id']}/frames/{index}", headers=restarted.headers)
                assert frame.status_code == 200
            events = sse_events(client, f"{restarted.url}/jobs/{job['id']}/events", restarted.headers)
            assert events[-1]["type"] == Event.FAILED
            listed = {j["id"]: j["state"] for j in client.get(f"{restarted.url}/jobs", headers=restarted.headers).json()}
            assert listed == {finished["id"]: "done", job["id"]: "failed"}
            assert client.get(f"{restarted.url}/jobs/{finished['id']}/mesh", headers=restarted.headers).status_code == 200
    finally:
        restarted.stop()


def test_every_route_needs_the_token(backend: Backend) -> None:
    with httpx.Client() as client:
        schema = client.get(f"{backend.url}/openapi.json", headers=backend.headers).json()
        routes = [(m.upper(), p.replace("{job_id}", "0" * 32).replace("{index}", "0").replace("{name}", "preview.png"))
                  for p, ops in schema["paths"].items() for m in ops]
        assert len(routes) >= 12
        for method, path in [*routes, ("GET", "/openapi.json"), ("GET", "/docs")]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": backend.token}):
                response = client.request(method, backend.url + path, headers=headers)
                assert response.status_code == 401, (method, path, headers)
        assert client.get(f"{backend.url}/health", headers=backend.headers).status_code == 200


def _bad_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    good = folder / "good.mp4"
    write_mp4(good, np.full((4, 32, 32, 3), 128, np.uint8), 24)
    files = {"truncated": folder / "truncated.mp4", "empty": folder / "empty.mp4", "text": folder / "notes.mp4",
             "huge": folder / "huge.mkv", "unknown_codec": folder / "unknown.avi"}
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not a video\n" * 50)
    with av.open(str(files["huge"]), "w") as container:  # 10000 x 10000, one frame (MJPEG: cheap to write)
        stream = container.add_stream("mjpeg", rate=24)
        stream.width = stream.height = 10000
        stream.pix_fmt = "yuvj420p"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((10000, 10000, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode())
    with av.open(str(folder / "mjpeg.avi"), "w") as container:
        stream = container.add_stream("mjpeg", rate=24)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuvj420p"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode())
    files["unknown_codec"].write_bytes((folder / "mjpeg.avi").read_bytes().replace(b"MJPG", b"ZZZZ"))
    return files


def test_bad_inputs_get_clear_4xx_and_the_server_keeps_serving(backend: Backend, clip: Path, tmp_path: Path) -> None:
    files = _bad_inputs(tmp_path / "bad")
    camera = json.loads((clip / "cameras.json").read_text())["views"][0]["camera"]
    expected = {"truncated": (400, "cannot decode"), "empty": (400, "empty"), "text": (400, "cannot decode"),
                "huge": (413, "10000x10000"), "unknown_codec": (400, "codec")}
    escape = tmp_path / "escape"
    escape.mkdir()
    (escape / "cameras.json").write_text(json.dumps({"format": "lim4d-clip", "fps": 24,
                                                     "views": [{"video": "../../../../etc/hostname", "camera": camera}]}))
    with httpx.Client() as client:
        for name, (status, words) in expected.items():
            response = client.post(f"{backend.url}/jobs", headers=backend.headers,
                                   json={"views": [str(files[name])], "cameras": [camera]})
            assert response.status_code == status, (name, response.text)
            assert words in response.json()["detail"], (name, response.text)
        requests = {
            "path traversal out of a clip folder": ({"clip": str(escape)}, 403, 400),
            "relative path": ({"views": ["../clip/view_00.mp4"], "cameras": [camera]}, 400, 400),
            "missing file": ({"views": [str(tmp_path / "nope.mp4")], "cameras": [camera]}, 400, 400),
            "absurd frame range": ({"clip": str(clip), "frame_start": 5_000_000}, 400, 400),
            "absurd frame count": ({"clip": str(clip), "frame_end": 10**9}, 422, 422),
            "absurd retime": ({"clip": str(clip), "retime": 1e9}, 422, 422),
            "times outside the clip": ({"clip": str(clip), "times": [0, 99]}, 400, 400),
            "camera count": ({"views": [str(clip / "view_00.mp4")], "cameras": []}, 400, 400),
            "not a camera": ({"views": [str(clip / "view_00.mp4")], "cameras": [{"K": "x"}]}, 400, 400),
            "unknown field": ({"clip": str(clip), "shell": "rm -rf /"}, 422, 422),
            "mask clips not one per view": ({"clip": str(clip), "masks": [str(clip / "view_00.mp4")]}, 400, 400),
            "mask clip of another size": ({"views": [str(clip / "view_00.mp4")], "cameras": [camera],
                                           "masks": [str(tmp_path / "bad" / "good.mp4")]}, 400, 400),
            "one mask for many views": ({"clip": str(clip), "mask": str(clip / "view_00.mp4")}, 400, 400),
        }
        for what, (body, low, high) in requests.items():
            response = client.post(f"{backend.url}/jobs", headers=backend.headers, json=body)
            assert low <= response.status_code <= high or response.status_code in (400, 403), (what, response.text)
            assert 400 <= response.status_code < 500 and response.json()["detail"], (what, response.text)
        assert client.get(f"{backend.url}/jobs/..%2F..%2Fetc", headers=backend.headers).status_code == 404
        assert client.get(f"{backend.url}/jobs/{'0' * 32}/files/..%2Fjob.json", headers=backend.headers).status_code == 404
        # the same checks on uploads
        upload = client.post(f"{backend.url}/jobs/upload", headers=backend.headers,
                             data={"request": json.dumps({"quality": "preview"})},
                             files=[("cameras", ("cameras.json", json.dumps([camera]), "application/json")),
                                    ("views", ("clip.mp4", files["truncated"].read_bytes(), "video/mp4"))])
        assert upload.status_code == 400 and "cannot decode" in upload.json()["detail"]
        assert client.get(f"{backend.url}/health", headers=backend.headers).status_code == 200


def test_a_camera_must_see_footage_of_its_shape(clip: Path, tmp_path: Path) -> None:
    """Each view's camera is checked against its footage as players show it (a phone clip's display matrix turns
    it upright) before any work starts: another shape is refused by name, a scaled copy of the image is fine."""
    camera = json.loads((clip / "cameras.json").read_text())["views"][0]["camera"]
    portrait = np.zeros((4, 64, 48, 3), np.uint8)
    write_turned(tmp_path / "phone.mp4", portrait, -90)  # stored 64 wide, 48 tall: shown 48 x 64
    tall = dict(camera, width=48, height=64, K=[[60.0, 0, 24], [0, 60.0, 32], [0, 0, 1]])
    wide = dict(camera, width=64, height=48, K=[[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]])
    request = {"views": [str(tmp_path / "phone.mp4")], "quality": "preview"}
    assert check_request(dict(request, cameras=[tall]), Limits(), [])["views"] == [str((tmp_path / "phone.mp4").resolve())]
    assert check_request(dict(request, cameras=[dict(tall, width=96, height=128)]), Limits(), [])
    with pytest.raises(RequestError, match=r"view 1 \(phone\.mp4\): the footage is 48x64 but its camera's image is 64x48"):
        check_request(dict(request, cameras=[wide]), Limits(), [])


def test_mask_clips_are_checked_against_their_views(clip: Path, tmp_path: Path) -> None:
    """A request's mask clips (one per view, null to matte a view) and a clip folder's own (cameras.json) must
    decode at their view's size, at least as long; paths come back resolved."""
    views = [clip / f"view_{v:02d}.mp4" for v in range(3)]
    checked = check_request({"clip": str(clip), "masks": [str(views[1]), None, str(views[0])]}, Limits(), [])
    assert checked["masks"] == [str(views[1].resolve()), None, str(views[0].resolve())]
    folder = tmp_path / "clip"
    shutil.copytree(clip, folder)
    write_mp4(folder / "mask_small.mp4", np.zeros((6, 32, 32, 3), np.uint8), 24)
    write_mp4(folder / "mask_short.mp4", np.zeros((2, 64, 64, 3), np.uint8), 24)
    manifest = json.loads((folder / "cameras.json").read_text())
    for name, words in (("mask_small.mp4", "32x32"), ("mask_short.mp4", "2 frames")):
        manifest["views"][2]["mask"] = name
        (folder / "cameras.json").write_text(json.dumps(manifest))
        with pytest.raises(RequestError, match=words):
            check_request({"clip": str(folder)}, Limits(), [])
    manifest["views"][2]["mask"] = "view_00.mp4"
    (folder / "cameras.json").write_text(json.dumps(manifest))
    assert check_request({"clip": str(folder)}, Limits(), [])["clip"] == str(folder.resolve())


def test_an_uploaded_sequence_counts_its_images_once_against_the_limit(tmp_path: Path) -> None:
    """Under a 1-MB upload limit, a sequence of 0.8 MB goes (its zip and its unpacked images are the same bytes,
    counted once) and one of 1.2 MB is refused with 413."""
    server = Backend(tmp_path / "jobs", "--max-upload-mb", "1")
    rng = np.random.default_rng(0)
    try:
        client = Client(server.url, server.token)
        for count in (4, 6):
            folder = tmp_path / f"noise_{count}"
            folder.mkdir()
            for index in range(count):  # noise does not compress: about 197 kB an image
                Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(folder / f"{index}.png")
            if count == 4:
                job = client.upload({"quality": "preview", "monocular": True}, [], [folder])
                assert len(list(Path(job["request"]["views"][0]).iterdir())) == 4
                client.cancel(job["id"])
            else:
                with pytest.raises(BackendError, match="413"):
                    client.upload({"quality": "preview", "monocular": True}, [], [folder])
    finally:
        server.stop()


def test_view_offsets_are_checked_against_every_views_length(clip: Path) -> None:
    """Per-view offsets (clips synced along a timeline) count each view's frames from its offset: the range checks
    use what is left of the shortest, and offsets are one per view of a multi-view job."""
    entries = json.loads((clip / "cameras.json").read_text())["views"]  # three views of 6 frames
    request = {"views": [str(clip / e["video"]) for e in entries], "cameras": [e["camera"] for e in entries]}
    assert check_request(dict(request, view_offsets=[0, 2, 1], frame_start=3), Limits(), [])["view_offsets"] == [0, 2, 1]
    with pytest.raises(RequestError, match=r"past the clip's end \(4 frames\)"):
        check_request(dict(request, view_offsets=[0, 2, 1], frame_start=4), Limits(), [])
    with pytest.raises(RequestError, match="no frames left"):
        check_request(dict(request, view_offsets=[0, 6, 0]), Limits(), [])
    with pytest.raises(RequestError, match="one per view"):
        check_request(dict(request, view_offsets=[0, 2]), Limits(), [])
    with pytest.raises(RequestError, match="monocular"):
        check_request({"views": request["views"][:1], "monocular": True, "view_offsets": [2]}, Limits(), [])


def test_a_clip_folders_image_sequences_are_checked_at_its_own_rate(clip: Path, tmp_path: Path) -> None:
    """A clip folder's image-sequence views play at the folder's fps (as the job reads them), so the duration limit
    counts them at that rate, not at the request's sequence_fps."""
    folder = tmp_path / "clip"
    manifest = json.loads((clip / "cameras.json").read_text())
    folder.mkdir()
    for index, entry in enumerate(manifest["views"]):
        images = folder / f"view_{index}"
        images.mkdir()
        for number, frame in enumerate(read_footage(clip / entry["video"]).frames):
            Image.fromarray(frame).save(images / f"{number:04d}.png")
        entry["video"] = images.name
    (folder / "cameras.json").write_text(json.dumps(dict(manifest, fps=1)))  # six images: six seconds
    with pytest.raises(RequestError, match="6 s exceeds the limit of 5 s"):
        check_request({"clip": str(folder), "sequence_fps": 24}, Limits(max_duration_s=5), [])
    (folder / "cameras.json").write_text(json.dumps(dict(manifest, fps=0)))
    with pytest.raises(RequestError, match=r"bad cameras.json \(fps 0 is not a frame rate\)"):
        check_request({"clip": str(folder)}, Limits(), [])
    (folder / "cameras.json").write_text(json.dumps(dict(manifest, fps=2)))
    assert check_request({"clip": str(folder)}, Limits(max_duration_s=5), [])["clip"] == str(folder.resolve())


def test_upload_runs_a_job_from_files_sent_over_http(backend: Backend, clip: Path) -> None:
    entries = json.loads((clip / "cameras.json").read_text())["views"]
    with httpx.Client() as client:
        response = client.post(f"{backend.url}/jobs/upload", headers=backend.headers,
                               data={"request": json.dumps({"quality": "preview", "frame_end": 3})},
                               files=[("cameras", ("cameras.json", json.dumps({"views": entries}), "application/json")),
                                      *[("views", (e["video"], (clip / e["video"]).read_bytes(), "video/mp4")) for e in entries]])
        assert response.status_code == 201, response.text
        events = sse_events(client, f"{backend.url}/jobs/{response.json()['id']}/events", backend.headers)
        assert events[-1]["type"] == Event.DONE and sum(e["type"] == Event.FRAME for e in events) == 3


def test_an_upload_carries_mask_clips_beside_its_views(backend: Backend, clip: Path, tmp_path: Path) -> None:
    """The add-on's client uploads a mask clip for one view (the others left to the matte): the backend keeps it with
    the job's inputs, names it in the job's request and runs the job; a request naming a mask clip that was not
    uploaded is refused."""
    entries = json.loads((clip / "cameras.json").read_text())["views"]
    alpha = np.load(clip / "gt" / "view_01.npz")["alpha"]
    mask = tmp_path / "view_01_mask.mp4"
    write_mask_clip(mask, alpha, 24)
    client = Client(backend.url, backend.token)
    job = client.upload({"quality": "preview", "frame_end": 3}, [e["camera"] for e in entries],
                        [clip / e["video"] for e in entries], [None, mask, None])
    masks = job["request"]["masks"]
    assert masks[0] is None and masks[2] is None and Path(masks[1]).name == "mask_01.mp4"
    assert Path(masks[1]).read_bytes() == mask.read_bytes()
    with httpx.Client() as http:
        events = sse_events(http, f"{backend.url}/jobs/{job['id']}/events", backend.headers)
        assert events[-1]["type"] == Event.DONE and sum(e["type"] == Event.FRAME for e in events) == 3
        refused = http.post(f"{backend.url}/jobs/upload", headers=backend.headers,
                            data={"request": json.dumps({"masks": [None, "other.mp4", None]})},
                            files=[("cameras", ("cameras.json", json.dumps({"views": entries}), "application/json")),
                                   *[("views", (e["video"], (clip / e["video"]).read_bytes(), "video/mp4")) for e in entries],
                                   ("masks", ("mask.mp4", mask.read_bytes(), "video/mp4"))])
        assert refused.status_code == 400 and "other.mp4" in refused.json()["detail"]
    # a monocular upload's one mask clip becomes the job's mask
    mono = client.upload({"quality": "preview", "frame_end": 3, "monocular": True}, [], [clip / entries[1]["video"]], [mask])
    client.cancel(mono["id"])
    assert Path(mono["request"]["mask"]).read_bytes() == mask.read_bytes() and not mono["request"].get("masks")


def test_image_sequences_are_views_on_disk_and_in_uploads(backend: Backend, clip: Path, tmp_path: Path) -> None:
    """A view may be an image sequence: a numbered image (Blender's clips name their sequences so) reads the images
    numbered on from it, a folder all of its images. Local requests are checked on them; the client uploads each as
    a .zip of exactly its images, and the job runs from the unpacked folder. A zip is unpacked by base name (nothing
    leaves the job's folder) and a zip of no images, or no zip, is refused."""
    entries = json.loads((clip / "cameras.json").read_text())["views"]
    numbered, folder = tmp_path / "numbered", tmp_path / "folder"
    numbered.mkdir(), folder.mkdir()
    for index, frame in enumerate(read_footage(clip / entries[1]["video"]).frames):
        Image.fromarray(frame).save(numbered / f"cam1_{index + 101:04d}.png")
    Image.new("RGB", (64, 64)).save(numbered / "cam1_0099.png")  # not part of the shot: before its first image
    Image.new("RGB", (64, 64)).save(numbered / "cam1_0108.png")  # nor after a gap: left out, with a warning
    for index, frame in enumerate(read_footage(clip / entries[2]["video"]).frames):
        Image.fromarray(frame).save(folder / f"{index}.png")
    views = [clip / entries[0]["video"], numbered / "cam1_0101.png", folder]
    cameras = [e["camera"] for e in entries]
    request = {"views": [str(v) for v in views], "cameras": cameras, "quality": "preview"}
    assert check_request(request, Limits(), [])["views"][1] == str(views[1].resolve())
    with pytest.raises(RequestError, match=r"past the clip's end \(6 frames\)"):
        check_request(dict(request, frame_start=6), Limits(), [])
    with httpx.Client() as http:
        local = create(http, backend, **request, frame_end=2, fit_steps=0)
        events = sse_events(http, f"{backend.url}/jobs/{local['id']}/events", backend.headers)
    assert events[-1]["type"] == Event.DONE
    assert next(e["message"] for e in events if e["type"] == Event.LOG).startswith(
        "warning: cam1_0107.png is missing: the sequence from cam1_0101.png stops at cam1_0106.png (6 images)")
    client = Client(backend.url, backend.token)
    job = client.upload({"quality": "preview", "frame_end": 3, "sequence_fps": 24}, cameras, views)
    sent = [Path(v) for v in job["request"]["views"]]
    assert sent[0].suffix == ".mp4" and sent[1].is_dir() and sent[2].is_dir()
    assert sorted(p.name for p in sent[1].iterdir()) == [f"cam1_{n:04d}.png" for n in range(101, 107)]
    assert sorted(p.name for p in sent[2].iterdir()) == sorted(p.name for p in folder.iterdir())
    with httpx.Client() as http:
        events = sse_events(http, f"{backend.url}/jobs/{job['id']}/events", backend.headers)
        assert events[-1]["type"] == Event.DONE and sum(e["type"] == Event.FRAME for e in events) == 3

        def upload_zip(members: dict[str, bytes], raw: bytes | None = None) -> httpx.Response:
            packed = io.BytesIO()
            with zipfile.ZipFile(packed, "w") as archive:
                for name, data in members.items():
                    archive.writestr(name, data)
            return http.post(f"{backend.url}/jobs/upload", headers=backend.headers,
                             data={"request": json.dumps({"quality": "preview", "monocular": True})},
                             files=[("cameras", ("cameras.json", "[]", "application/json")),
                                    ("views", ("shot.zip", raw if raw is not None else packed.getvalue(), "application/zip"))])

        image = (numbered / "cam1_0101.png").read_bytes()
        kept = upload_zip({"../../escape_1.png": image, "deep/down/escape_2.png": image, "readme.txt": b"hi"})
        assert kept.status_code == 201, kept.text
        unpacked = Path(kept.json()["request"]["views"][0])
        assert sorted(p.name for p in unpacked.iterdir()) == ["escape_1.png", "escape_2.png"]
        assert {p.parent for p in unpacked.parents[3].rglob("escape_*")} == {unpacked}  # none above the jobs' root
        client.cancel(kept.json()["id"])
        empty = upload_zip({"readme.txt": b"no images"})
        assert empty.status_code == 400 and "no images" in empty.json()["detail"]
        broken = upload_zip({}, raw=b"not a zip at all")
        assert broken.status_code == 400 and "not a readable zip" in broken.json()["detail"]


def test_refuses_other_addresses_without_flag_and_token(tmp_path: Path) -> None:
    done = run_backend("serve", "--host", "0.0.0.0", "--port", "0", "--jobs", str(tmp_path), timeout=60)
    assert done.returncode == 2 and "--allow-remote" in done.stderr


def test_exits_when_its_parent_dies(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    server = Backend(tmp_path / "jobs", "--parent-pid", str(parent.pid))
    try:
        parent.kill()
        parent.wait()
        server.process.wait(timeout=30)
    finally:
        server.stop()
    assert server.process.returncode is not None


def test_token_file_is_made_private_and_reused(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    first = Backend(tmp_path / "jobs", "--token-file", str(token_file))
    first.stop()
    assert "token" not in first.info and token_file.stat().st_mode & 0o777 == 0o600
    second = Backend(tmp_path / "jobs", "--token-file", str(token_file))
    try:
        headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        assert httpx.get(f"{second.url}/health", headers=headers).status_code == 200
    finally:
        second.stop()


def test_extension_and_backend_versions_agree() -> None:
    import tomllib

    from backend import __version__

    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text())
    assert manifest["version"] == __version__


def test_the_request_vocabulary_is_the_servers_schema() -> None:
    """protocol.JOB_REQUEST_FIELDS, which the add-on sends by, names exactly what the server's schema accepts."""
    from backend.protocol import JOB_REQUEST_FIELDS
    from backend.server.app import JobRequest

    assert sorted(JOB_REQUEST_FIELDS) == sorted(JobRequest.model_fields)


def test_allowed_roots_confine_inputs(tmp_path: Path, clip: Path) -> None:
    inside = tmp_path / "allowed"
    inside.mkdir()
    server = Backend(tmp_path / "jobs", "--allowed-root", str(inside))
    try:
        response = httpx.post(f"{server.url}/jobs", headers=server.headers, json={"clip": str(clip), "quality": "preview"})
        assert response.status_code == 403 and "allowed" in response.json()["detail"]
        link = inside / "link"
        link.symlink_to(clip)  # a symlink inside pointing outside is still outside
        response = httpx.post(f"{server.url}/jobs", headers=server.headers, json={"clip": str(link)})
        assert response.status_code == 403
    finally:
        server.stop()


def test_device_choice_is_reported_and_a_missing_gpu_is_refused(tmp_path: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        refused = run_backend("serve", "--device", "cuda", "--jobs", str(tmp_path / "refused"), timeout=120)
        assert refused.returncode != 0 and "no CUDA GPU" in refused.stderr
    server = Backend(tmp_path / "jobs", "--device", "cpu")
    try:
        health = httpx.get(f"{server.url}/health", headers=server.headers).json()
        assert server.info["device"] == health["device"] == "cpu"
    finally:
        server.stop()
