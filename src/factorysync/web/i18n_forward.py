"""Console texts of the central store: each site's forwarded changes (overview page)."""

from __future__ import annotations

FORWARD_TEXTS: dict[str, tuple[str, str]] = {
    # key: (English, Bahasa Indonesia)
    "forward.title": ("Forwarded sites", "Situs yang meneruskan data"),
    "forward.site": ("Site", "Situs"),
    "forward.waiting": ("Waiting messages", "Pesan menunggu"),
    "forward.lag": ("Lag", "Keterlambatan"),
    "forward.rows": ("Rows applied", "Baris diterapkan"),
    "forward.rejected": ("{n} rejected", "{n} ditolak"),
    "forward.last_published": ("Last published", "Terakhir diterbitkan"),
    "forward.counted": ("Counted", "Dihitung"),
}
