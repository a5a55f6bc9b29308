"""Audit of the shared objects in a Lambda package: will they load on the python3.12 runtime?

For every ELF file under the package root this reads, with a small pure-Python reader (no
binutils, no pyelftools), the dynamic section (DT_NEEDED, DT_RPATH/DT_RUNPATH, DT_SONAME) and
the version needs (``.gnu.version_r``), then reports:

- a needed library found neither in the package (the object's own directory, its ``$ORIGIN``
  rpath/runpath, the package's ``lib/``, a wheel's ``*.libs/`` directory) nor in
  ``RUNTIME_LIBRARIES``;
- a required symbol version newer than the runtime provides (``GLIBC_2.35`` and later, and the
  libstdc++/libgcc_s version sets of Amazon Linux 2023);
- a version a bundled library is asked for but does not define (e.g. ``GOMP_4.5``);
- a file that is not an x86_64 ELF64 object, or that cannot be read (fails closed).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

#: Libraries the Lambda python3.12 runtime provides (Amazon Linux 2023, glibc 2.34): glibc's
#: shared objects, GCC 11's libstdc++ and libgcc_s, and zlib. Source: AWS Lambda's runtime
#: table (python3.12 runs on Amazon Linux 2023) and the packages of the AL2023 base image
#: public.ecr.aws/lambda/python:3.12 (glibc, libgcc, libstdc++, zlib). libgomp is NOT in it:
#: only LightGBM needs it, and only the "lightgbm" zip flavour (deployment/package_lambda.py)
#: has LightGBM; that build bundles libgomp in lib/. A bundle's compiled predictor needs only
#: libc and libm (deployment/rollout.py audits it with read_elf before a rollout).
RUNTIME_LIBRARIES = frozenset(
    {
        "ld-linux-x86-64.so.2",
        "libc.so.6",
        "libm.so.6",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "libutil.so.1",
        "libresolv.so.2",
        "libstdc++.so.6",
        "libgcc_s.so.1",
        "libz.so.1",
    }
)
#: Newest symbol version per version family on the runtime: glibc 2.34, GCC 11 (libstdc++
#: GLIBCXX_3.4.29 / CXXABI_1.3.13, libgcc_s GCC_11.0).
RUNTIME_MAX_VERSIONS = {
    "GLIBC": (2, 34),
    "GLIBCXX": (3, 4, 29),
    "CXXABI": (1, 3, 13),
    "GCC": (11, 0),
}
#: Where Lambda looks for libraries of a zip package (on LD_LIBRARY_PATH: /var/task/lib).
PACKAGE_LIB_DIR = "lib"

ELF_MAGIC = b"\x7fELF"
EM_X86_64 = 62
SHT_DYNAMIC = 6
SHT_GNU_VERDEF = 0x6FFFFFFD
SHT_GNU_VERNEED = 0x6FFFFFFE
DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH = 1, 14, 15, 29


class ElfError(ValueError):
    """Not an ELF64 little-endian x86_64 object, or a malformed one."""


@dataclass
class ElfInfo:
    """What the dynamic loader reads from one shared object."""

    needed: list[str] = field(default_factory=list)
    soname: str | None = None
    search_paths: list[str] = field(default_factory=list)  # DT_RPATH + DT_RUNPATH entries
    version_needs: dict[str, list[str]] = field(default_factory=dict)  # library -> versions
    version_defs: set[str] = field(default_factory=set)


def is_elf(path: Path) -> bool:
    """True when the file starts with the ELF magic number."""
    with path.open("rb") as handle:
        return handle.read(4) == ELF_MAGIC


def read_elf(data: bytes) -> ElfInfo:
    """Parse the dynamic section and the GNU version sections of an x86_64 ELF64 object."""
    if data[:4] != ELF_MAGIC:
        raise ElfError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ElfError("not a 64-bit little-endian ELF object")
    try:
        machine = struct.unpack_from("<H", data, 18)[0]
        if machine != EM_X86_64:
            raise ElfError(f"machine {machine} is not x86_64 (62)")
        shoff = struct.unpack_from("<Q", data, 40)[0]
        shentsize, shnum = struct.unpack_from("<HH", data, 58)
        sections = [
            struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
        ]
        info = ElfInfo()
        # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
        for _, sh_type, _, _, offset, size, link, count, _, _ in sections:
            strtab = sections[link] if link < len(sections) else None
            if sh_type == SHT_DYNAMIC and strtab is not None:
                _read_dynamic(data, offset, size, strtab, info)
            elif sh_type == SHT_GNU_VERNEED and strtab is not None:
                _read_verneed(data, offset, count, strtab, info)
            elif sh_type == SHT_GNU_VERDEF and strtab is not None:
                _read_verdef(data, offset, count, strtab, info)
        return info
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ElfError(f"malformed ELF object: {exc}") from exc


def _string(data: bytes, strtab: tuple, offset: int) -> str:
    start = strtab[4] + offset
    end = data.index(b"\0", start)
    return data[start:end].decode()


def _read_dynamic(data: bytes, offset: int, size: int, strtab: tuple, info: ElfInfo) -> None:
    for position in range(offset, offset + size, 16):
        tag, value = struct.unpack_from("<qQ", data, position)
        if tag == 0:
            break
        if tag == DT_NEEDED:
            info.needed.append(_string(data, strtab, value))
        elif tag == DT_SONAME:
            info.soname = _string(data, strtab, value)
        elif tag in (DT_RPATH, DT_RUNPATH):
            info.search_paths += [p for p in _string(data, strtab, value).split(":") if p]


def _read_verneed(data: bytes, offset: int, count: int, strtab: tuple, info: ElfInfo) -> None:
    position = offset
    for _ in range(count):
        _, cnt, file_name, aux, next_entry = struct.unpack_from("<HHIII", data, position)
        versions = info.version_needs.setdefault(_string(data, strtab, file_name), [])
        aux_position = position + aux
        for _ in range(cnt):
            _, _, _, name, aux_next = struct.unpack_from("<IHHII", data, aux_position)
            versions.append(_string(data, strtab, name))
            aux_position += aux_next
        if not next_entry:
            break
        position += next_entry


def _read_verdef(data: bytes, offset: int, count: int, strtab: tuple, info: ElfInfo) -> None:
    position = offset
    for _ in range(count):
        _, flags, _, cnt, _, aux, next_entry = struct.unpack_from("<HHHHIII", data, position)
        if cnt and not flags & 1:  # VER_FLG_BASE names the file itself, not a version
            info.version_defs.add(
                _string(data, strtab, struct.unpack_from("<I", data, position + aux)[0])
            )
        if not next_entry:
            break
        position += next_entry


def parse_version(name: str) -> tuple[str, tuple[int, ...]] | None:
    """'GLIBC_2.17' -> ('GLIBC', (2, 17)); None for names without a numeric version."""
    family, _, number = name.rpartition("_")
    try:
        return family, tuple(int(part) for part in number.split("."))
    except ValueError:
        return None


def too_new(version: str) -> bool:
    """True when the runtime's library family is older than this required symbol version."""
    parsed = parse_version(version)
    if parsed is None or parsed[0] not in RUNTIME_MAX_VERSIONS:
        return False
    return parsed[1] > RUNTIME_MAX_VERSIONS[parsed[0]]


@dataclass
class AuditReport:
    """Result of ``audit_package``: the objects checked, bundled providers, and the problems."""

    objects: int = 0
    bundled: dict[str, str] = field(default_factory=dict)  # needed name -> providing file
    max_glibc: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """A few lines for the build output."""
        lines = [
            f"audit: {self.objects} ELF objects, highest GLIBC version required "
            f"{self.max_glibc or 'none'} (runtime: glibc 2.34)"
        ]
        for name, provider in sorted(self.bundled.items()):
            lines.append(f"audit: {name} bundled as {provider}")
        lines += [f"audit: FAIL {problem}" for problem in self.problems]
        lines.append("audit: OK" if self.ok else f"audit: {len(self.problems)} problem(s)")
        return "\n".join(lines)


def _search_dirs(root: Path, obj: Path, info: ElfInfo) -> list[Path]:
    origin = obj.parent
    dirs = [origin]
    for entry in info.search_paths:
        entry = entry.replace("${ORIGIN}", str(origin)).replace("$ORIGIN", str(origin))
        if entry.startswith(str(origin)):
            dirs.append(Path(entry))  # absolute host paths do not exist on Lambda
    dirs.append(root / PACKAGE_LIB_DIR)
    dirs += sorted(p for p in root.glob("*.libs") if p.is_dir())
    return dirs


def audit_package(root: Path, files: Iterable[Path] | None = None) -> AuditReport:
    """Check every ELF object under ``root`` against the package and the runtime."""
    root = Path(root)
    report = AuditReport()
    candidates = files if files is not None else sorted(root.rglob("*"))
    parsed: dict[Path, ElfInfo] = {}
    for path in candidates:
        if not path.is_file() or path.is_symlink() or not is_elf(path):
            continue
        report.objects += 1
        try:
            parsed[path.resolve()] = read_elf(path.read_bytes())
        except ElfError as exc:
            report.problems.append(f"{path.relative_to(root)}: {exc}")
    glibc: list[tuple[int, ...]] = []
    for path, info in parsed.items():
        where = path.relative_to(root.resolve())
        for library in info.needed:
            provider = next(
                (d / library for d in _search_dirs(root, path, info) if (d / library).is_file()),
                None,
            )
            if provider is not None:
                report.bundled.setdefault(
                    library, str(provider.resolve().relative_to(root.resolve()))
                )
                provided = parsed.get(provider.resolve())
                missing = [
                    v
                    for v in info.version_needs.get(library, [])
                    if provided is not None and v not in provided.version_defs
                ]
                if missing:
                    report.problems.append(
                        f"{where}: needs {', '.join(missing)} from {library}, which the "
                        f"bundled {report.bundled[library]} does not define"
                    )
            elif library not in RUNTIME_LIBRARIES:
                report.problems.append(
                    f"{where}: needs {library}, which is neither in the package (same "
                    f"directory, $ORIGIN rpath, {PACKAGE_LIB_DIR}/, *.libs/) nor on the "
                    "python3.12 runtime"
                )
        for library, versions in info.version_needs.items():
            for version in versions:
                parsed_version = parse_version(version)
                if parsed_version and parsed_version[0] == "GLIBC":
                    glibc.append(parsed_version[1])
                if library in RUNTIME_LIBRARIES and too_new(version):
                    report.problems.append(
                        f"{where}: requires {version} from {library}, newer than the "
                        "python3.12 runtime (Amazon Linux 2023: glibc 2.34, GCC 11)"
                    )
    if glibc:
        report.max_glibc = "GLIBC_" + ".".join(map(str, max(glibc)))
    return report


PT_GNU_STACK, PT_GNU_RELRO = 0x6474E551, 0x6474E552
PF_X = 1
SHT_DYNSYM = 11
DT_BIND_NOW, DT_FLAGS, DT_FLAGS_1 = 24, 30, 0x6FFFFFFB
DF_BIND_NOW, DF_1_NOW = 0x8, 0x1


@dataclass(frozen=True)
class Hardening:
    """The hardening a shared object shows (what ``checksec`` reports for it)."""

    relro: bool  # a PT_GNU_RELRO segment: relocated data made read-only after loading
    bind_now: bool  # DT_BIND_NOW, DF_BIND_NOW or DF_1_NOW: every symbol resolved at load
    executable_stack: bool  # PT_GNU_STACK with PF_X (or no PT_GNU_STACK at all)
    imports: frozenset[str]  # undefined dynamic symbols, e.g. __stack_chk_fail, __memcpy_chk

    @property
    def full_relro(self) -> bool:
        return self.relro and self.bind_now

    @property
    def stack_protector(self) -> bool:
        return "__stack_chk_fail" in self.imports

    @property
    def fortified(self) -> frozenset[str]:
        """glibc's checked functions it calls (``_FORTIFY_SOURCE``), e.g. ``__memcpy_chk``."""
        return frozenset(name for name in self.imports if name.endswith("_chk"))


def read_hardening(data: bytes) -> Hardening:
    """Program headers, dynamic flags and imported symbols of an x86_64 ELF64 object."""
    read_elf(data)  # the same checks: ELF64, little-endian, x86_64
    try:
        phoff = struct.unpack_from("<Q", data, 32)[0]
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        segments = [struct.unpack_from("<II", data, phoff + i * phentsize) for i in range(phnum)]
        relro = any(kind == PT_GNU_RELRO for kind, _ in segments)
        stacks = [flags for kind, flags in segments if kind == PT_GNU_STACK]
        shoff = struct.unpack_from("<Q", data, 40)[0]
        shentsize, shnum = struct.unpack_from("<HH", data, 58)
        sections = [
            struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
        ]
        bind_now, imports = False, set()
        for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
            if sh_type == SHT_DYNAMIC:
                for position in range(offset, offset + size, 16):
                    tag, value = struct.unpack_from("<qQ", data, position)
                    if tag == 0:
                        break
                    bind_now |= (
                        tag == DT_BIND_NOW
                        or (tag == DT_FLAGS and bool(value & DF_BIND_NOW))
                        or (tag == DT_FLAGS_1 and bool(value & DF_1_NOW))
                    )
            elif sh_type == SHT_DYNSYM and entsize:
                strtab = sections[link]
                for position in range(offset + entsize, offset + size, entsize):
                    name, _, _, shndx = struct.unpack_from("<IBBH", data, position)
                    if shndx == 0 and name:  # SHN_UNDEF: defined elsewhere, imported
                        imports.add(_string(data, strtab, name))
    except (struct.error, IndexError, UnicodeDecodeError, ValueError) as exc:
        raise ElfError(f"malformed ELF object: {exc}") from exc
    return Hardening(
        relro=relro,
        bind_now=bind_now,
        executable_stack=not stacks or any(flags & PF_X for flags in stacks),
        imports=frozenset(imports),
    )
