"""Hook implementations of the nhsa region: the national profile."""

from __future__ import annotations

from collections.abc import Callable

from adapter.plugin import hookimpl
from adapter.plugin.api import RegionProfile

from adapter_nhsa.dialect import NhsaDialect

#: Per-transaction paths (reference §2.1 b) for regions that use one path per service.
PATHS = {
    "9001": "/fsi/api/signInSignOutService/signIn",
    "9002": "/fsi/api/signInSignOutService/signOut",
    "2301": "/fsi/api/hospFeeDtlService/feeDtlUp",
    "2302": "/fsi/api/hospFeeDtlService/feeDtlCl",
}

NHSA = RegionProfile(
    name="nhsa",
    description="National platform interface v1.x: single endpoint, TIF gateway",
    dialect=NhsaDialect(),
    gateway="tif",
    url_style="single",
    infver="V1.0",
    recer_sys_code="YBXT",
    paths=PATHS,
)


@hookimpl
def adapter_register_regions(register: Callable[[RegionProfile], None]) -> None:
    register(NHSA)
