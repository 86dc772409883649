"""Tune's S3 storage without directory markers, so a prefix-scoped identity can hold a search's state.

Why not pyarrow's `S3FileSystem` as it is: Ray Tune (and `pyarrow.fs.copy_files`, which Ray's syncer uses) calls
`create_dir(path, recursive=True)`, and Arrow's `S3FileSystem::CreateDir` then sends `HeadBucket` before writing
empty "directory" objects (arrow `cpp/src/arrow/filesystem/s3fs.cc`, `CreateDir` -> `BucketExists`). `HeadBucket`
needs `s3:ListBucket` on the whole bucket with no `s3:prefix`, which the stack's identity does not have on
purpose (it would list every key of the bucket, backups included): every Tune run would stop at AccessDenied.
S3 has no directories; an object's key makes its "parents" visible to listings. So this filesystem is Arrow's,
with `create_dir` a no-op: every other call (put, get, head, list under the prefix, delete) goes to Arrow.
"""

from __future__ import annotations

from typing import Any

import pyarrow.fs as pafs


class NoMarkerS3Handler(pafs.FileSystemHandler):
    """A `pyarrow.fs.PyFileSystem` handler delegating to an `S3FileSystem`, except for directory creation."""

    def __init__(self, s3: pafs.S3FileSystem) -> None:
        self.s3 = s3

    def __reduce__(self) -> tuple[Any, ...]:
        # Tune sends the storage context (with this filesystem) to every trial's process.
        return NoMarkerS3Handler, (self.s3,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoMarkerS3Handler) and self.s3.equals(other.s3)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def get_type_name(self) -> str:
        return "s3-no-dir-markers"

    def normalize_path(self, path: str) -> str:
        return self.s3.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.s3.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.s3.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        """Nothing to create: a key's prefixes exist as soon as the key does."""

    def delete_dir(self, path: str) -> None:
        self.s3.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.s3.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("refusing to delete a whole S3 account's buckets")

    def delete_file(self, path: str) -> None:
        self.s3.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.s3.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.s3.copy_file(src, dest)

    def open_input_stream(self, path: str) -> Any:
        return self.s3.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        return self.s3.open_input_file(path)

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        return self.s3.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        return self.s3.open_append_stream(path, metadata=metadata)


def tune_filesystem(**s3_options: Any) -> pafs.PyFileSystem:
    """The filesystem to give `RunConfig(storage_filesystem=...)`: Arrow's S3 client without directory markers."""
    return pafs.PyFileSystem(NoMarkerS3Handler(pafs.S3FileSystem(**s3_options)))
