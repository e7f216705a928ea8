"""The demo plant's people: operators, group leaders, technicians and QC inspectors.

Staff come from fixed name lists, not from a random stream, so a person has the
same NIK (employee number) in every file and for every seed, and attendance,
shift and incident records can refer to each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from factorysync.demo.catalogue import LINES
from factorysync.demo.timeline import SHIFT_IDS

FIRST_NAMES = (
    "Agus",
    "Budi",
    "Dewi",
    "Siti",
    "Rina",
    "Andi",
    "Joko",
    "Wahyu",
    "Eko",
    "Sri",
    "Fajar",
    "Dian",
    "Indah",
    "Rizky",
    "Nur",
    "Putri",
    "Bayu",
    "Teguh",
    "Ahmad",
    "Dedi",
    "Asep",
    "Ujang",
    "Lina",
    "Fitri",
    "Rudi",
    "Slamet",
    "Bambang",
    "Yanti",
    "Ratna",
    "Imam",
    "Galih",
)
LAST_NAMES = (
    "Santoso",
    "Saputra",
    "Wijaya",
    "Hidayat",
    "Pratama",
    "Setiawan",
    "Kurniawan",
    "Nugroho",
    "Siregar",
    "Lubis",
    "Simanjuntak",
    "Susanto",
    "Rahman",
    "Permana",
    "Firmansyah",
    "Hakim",
    "Utami",
    "Lestari",
    "Wulandari",
    "Maulana",
    "Purnomo",
    "Hasibuan",
    "Ramadhan",
)
FEMALE_NAMES = frozenset(
    {
        "Dewi",
        "Siti",
        "Rina",
        "Sri",
        "Dian",
        "Indah",
        "Putri",
        "Lina",
        "Fitri",
        "Yanti",
        "Ratna",
        "Nur",
    }
)
GROUPS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Person:
    nik: str
    name: str
    role: str
    line: str | None
    group: str


@lru_cache(maxsize=1)
def people() -> tuple[Person, ...]:
    """Plant staff: six operators per line and group plus leaders, technicians and QC."""
    staff: list[Person] = []
    roles: list[tuple[str, str | None]] = [
        ("Operator", line.id) for line in LINES for _ in range(6)
    ]
    roles += [
        ("Group Leader", None),
        ("Technician", None),
        ("Technician", None),
        ("QC Inspector", None),
    ]
    index = 0
    for group in GROUPS:
        for role, line in roles:
            first = FIRST_NAMES[(index * 7) % len(FIRST_NAMES)]
            last = LAST_NAMES[(index * 5 + index // 23) % len(LAST_NAMES)]
            staff.append(Person(f"{21030 + index * 13}", f"{first} {last}", role, line, group))
            index += 1
    return tuple(staff)


def staff_with_role(role: str) -> tuple[Person, ...]:
    return tuple(p for p in people() if p.role == role)


def shift_group(day: int, shift: str) -> str:
    """Four crews rotate weekly over three shifts; the fourth crew is off."""
    k = (day // 7) % len(GROUPS)
    order = GROUPS[k:] + GROUPS[:k]
    return order[SHIFT_IDS.index(shift)]
