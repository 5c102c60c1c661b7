"""An uploaded image sequence: a .zip of its images (``Client.upload`` packs one), unpacked into a folder.

Only images are taken, by their base names (no folders inside, so no path leaves the job's folder), and the bytes
written count against the upload's limit as they are unpacked: a zip's own sizes are not trusted.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from backend.protocol import IMAGE_SUFFIXES

CHUNK = 1 << 20
MAX_IMAGES = 100_000  # a sequence of more is not footage (and a zip of empty entries would cost no bytes)
ENTRY_COST = 4096  # bytes each image counts against the budget beside its own, for the file it makes


class UploadError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def unpack_sequence(archive: Path, folder: Path, budget: int) -> int:
    """Unpack the images of ``archive`` into ``folder`` (made here) and delete the archive; returns the bytes written
    (each image counted ``ENTRY_COST`` more). UploadError (400 not a zip / no images / two images of one name, 413 over
    ``budget`` bytes or ``MAX_IMAGES``)."""
    written = 0
    try:
        with zipfile.ZipFile(archive) as packed:
            members = [m for m in packed.infolist() if not m.is_dir() and Path(m.filename).suffix.lower() in IMAGE_SUFFIXES]
            names = [Path(m.filename.replace("\\", "/")).name for m in members]
            if not members:
                raise UploadError(400, f"{archive.name}: the zip holds no images ({', '.join(IMAGE_SUFFIXES)})")
            if len(set(names)) != len(names):
                raise UploadError(400, f"{archive.name}: two images of the same name (the sequence's order is by name)")
            if len(members) > MAX_IMAGES:
                raise UploadError(413, f"{archive.name}: {len(members)} images exceed the limit of {MAX_IMAGES}")
            folder.mkdir()
            for member, name in zip(members, names, strict=True):
                written += ENTRY_COST
                with packed.open(member) as source, open(folder / name, "wb") as target:
                    while chunk := source.read(CHUNK):
                        written += len(chunk)
                        if written > budget:
                            raise UploadError(413, f"{archive.name}: unpacked, the sequence exceeds the upload limit")
                        target.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, zlib.error, EOFError) as error:
        raise UploadError(400, f"{archive.name}: not a readable zip ({error})") from None
    archive.unlink()
    return written
