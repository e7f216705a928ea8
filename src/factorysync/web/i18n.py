"""Every label of the console in English (``en``) and Bahasa Indonesia (``id``).

Templates call ``t("key")``; a key missing from the table is a bug, caught by the tests
(every key used in a template must be here in both languages).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

LANGUAGES = {"en": "English", "id": "Bahasa Indonesia"}

MESSAGES: dict[str, tuple[str, str]] = {
    # key: (English, Bahasa Indonesia)
    "app.title": ("factorysync console", "Konsol factorysync"),
    "nav.overview": ("Overview", "Ringkasan"),
    "nav.sources": ("Data resources", "Sumber data"),
    "nav.alerts": ("Alerts", "Peringatan"),
    "nav.api_docs": ("API docs", "Dokumentasi API"),
    "nav.logout": ("Log out", "Keluar"),
    "nav.language": ("Language", "Bahasa"),
    "login.title": ("Log in", "Masuk"),
    "login.username": ("User name", "Nama pengguna"),
    "login.password": ("Password", "Kata sandi"),
    "login.submit": ("Log in", "Masuk"),
    "login.failed": (
        "Wrong user name or password, or the user is disabled.",
        "Nama pengguna atau kata sandi salah, atau pengguna dinonaktifkan.",
    ),
    "login.too_many": (
        "Too many failed logins. Try again in {seconds} s.",
        "Terlalu banyak percobaan gagal. Coba lagi dalam {seconds} detik.",
    ),
    "login.expired": (
        "The form expired. Please log in again.",
        "Formulir kedaluwarsa. Silakan masuk kembali.",
    ),
    "role": ("Role", "Peran"),
    "role.admin": ("admin", "admin"),
    "role.operator": ("operator", "operator"),
    "role.viewer": ("viewer", "pemantau"),
    # statuses
    "status.active": ("active", "aktif"),
    "status.inactive": ("inactive", "nonaktif"),
    "status.error": ("error", "galat"),
    "status.maintenance": ("maintenance", "pemeliharaan"),
    "status.running": ("running", "berjalan"),
    # active, but its last run failed (before the circuit opens)
    "status.failing": ("failing", "gagal"),
    "source.failing": ("{n} failed runs in a row", "{n} kali gagal berturut-turut"),
    "source.cadence": ("Runs", "Berjalan"),
    "live.receiving": ("receiving", "menerima"),
    "live.quiet": ("quiet", "sepi"),
    "live.waiting": ("no data yet", "belum ada data"),
    "live.error": ("error", "galat"),
    "live.stopped": ("stopped", "berhenti"),
    "live.per_min": ("{n}/min", "{n}/mnt"),
    "form.interval_hint": (
        "empty: from the sync frequency, else 300",
        "kosong: dari frekuensi sinkron, jika tidak 300",
    ),
    "run.success": ("success", "berhasil"),
    "run.failed": ("failed", "gagal"),
    "run.partial": ("partial", "sebagian"),
    "run.running": ("running", "berjalan"),
    # overview
    "overview.title": ("Overview", "Ringkasan"),
    "overview.sources": ("Sources", "Sumber"),
    "overview.by_status": ("Sources by status", "Sumber per status"),
    "overview.failing": ("Failing sources", "Sumber yang gagal"),
    "overview.stalest": ("Stalest sources", "Sumber paling lama tidak diperbarui"),
    "overview.lag": ("Scheduler lag", "Keterlambatan penjadwal"),
    "overview.in_progress": ("Runs in progress", "Proses berjalan"),
    "overview.throughput": ("Rows synced, last 24 h", "Baris tersinkron, 24 jam terakhir"),
    "overview.runs_24h": ("Runs, last 24 h", "Proses, 24 jam terakhir"),
    "overview.open_alerts": ("Open alerts", "Peringatan terbuka"),
    "overview.none_failing": ("No source is failing.", "Tidak ada sumber yang gagal."),
    "overview.rows_per_hour": ("rows per hour", "baris per jam"),
    # sources list
    "sources.title": ("Data resources", "Sumber data"),
    "sources.add": ("Add source", "Tambah sumber"),
    "sources.search": ("Search", "Cari"),
    "sources.search_hint": ("id or name", "id atau nama"),
    "sources.all_types": ("All types", "Semua jenis"),
    "sources.all_statuses": ("All statuses", "Semua status"),
    "sources.all_categories": ("All categories", "Semua kategori"),
    "sources.filter": ("Filter", "Saring"),
    "sources.count": ("{n} sources", "{n} sumber"),
    "sources.live": ("Live: refreshes every {s} s", "Langsung: diperbarui setiap {s} detik"),
    "sources.none": ("No source matches.", "Tidak ada sumber yang cocok."),
    "col.type": ("Type", "Jenis"),
    "col.source": ("Source", "Sumber"),
    "col.category": ("Category", "Kategori"),
    "col.status": ("Status", "Status"),
    "col.last_sync": ("Last sync", "Sinkron terakhir"),
    "col.next_sync": ("Next sync", "Sinkron berikutnya"),
    "col.last_run": ("Last run", "Proses terakhir"),
    "col.errors": ("Errors", "Galat"),
    "col.alerts": ("Alerts", "Peringatan"),
    "col.started": ("Started", "Mulai"),
    "col.sync_type": ("Sync type", "Jenis sinkron"),
    "col.processed": ("Processed", "Diproses"),
    "col.inserted": ("Inserted", "Ditambah"),
    "col.updated": ("Updated", "Diubah"),
    "col.deleted": ("Deleted", "Dihapus"),
    "col.rejected": ("Rejected", "Ditolak"),
    "col.duration": ("Duration", "Durasi"),
    "col.error": ("Error", "Galat"),
    "col.connection": ("Connection", "Koneksi"),
    "col.trigger": ("Trigger", "Pemicu"),
    "col.record": ("Record", "Rekaman"),
    "col.reasons": ("Reasons", "Alasan"),
    "col.rule": ("Rule", "Aturan"),
    "col.severity": ("Severity", "Tingkat"),
    "col.message": ("Message", "Pesan"),
    "col.state": ("State", "Keadaan"),
    "col.opened": ("Opened", "Dibuka"),
    "col.last_seen": ("Last seen", "Terakhir terlihat"),
    "col.occurrences": ("Occurrences", "Kejadian"),
    "col.rows": ("Rows", "Baris"),
    "counts.short": (
        "{p} read · +{i} ~{u} −{d} · {r} rejected",
        "{p} dibaca · +{i} ~{u} −{d} · {r} ditolak",
    ),
    "never": ("never", "belum pernah"),
    "now": ("now", "sekarang"),
    "ago": ("{x} ago", "{x} lalu"),
    "in": ("in {x}", "dalam {x}"),
    "unit.s": ("{n} s", "{n} dtk"),
    "unit.min": ("{n} min", "{n} mnt"),
    "unit.h": ("{n} h", "{n} jam"),
    "unit.d": ("{n} d", "{n} hari"),
    # source detail
    "source.history": ("Run history", "Riwayat proses"),
    "source.no_runs": ("No run yet.", "Belum ada proses."),
    "source.chart_duration": ("Duration per run (ms)", "Durasi per proses (md)"),
    "source.chart_rows": ("Rows per run", "Baris per proses"),
    "source.chart_rate": ("Rows per second over time", "Baris per detik dari waktu ke waktu"),
    "source.quarantine": ("Quarantined records", "Rekaman karantina"),
    "source.no_quarantine": ("No quarantined record.", "Tidak ada rekaman karantina."),
    "source.quarantine_total": (
        "{shown} of {total} entries, most recently refused first.",
        "{shown} dari {total} entri, yang terakhir ditolak lebih dulu.",
    ),
    "source.quarantine_replay": ("Replay", "Proses ulang"),
    "source.quarantine_clear": ("Clear", "Kosongkan"),
    "source.quarantine_export": ("Export CSV", "Ekspor CSV"),
    "source.replayed": (
        "Replay (run {run}): {loaded} loaded, {still} still rejected, {left} left.",
        "Proses ulang ({run}): {loaded} dimuat, {still} masih ditolak, {left} tersisa.",
    ),
    "source.cleared": ("{n} quarantine entries removed.", "{n} entri karantina dihapus."),
    "col.times_seen": ("Seen", "Terlihat"),
    "col.first_seen": ("First seen", "Pertama terlihat"),
    "col.kept_previous": ("Previous row kept", "Baris lama dipertahankan"),
    "source.connections": ("Connections", "Koneksi"),
    "source.mappings": ("Mappings", "Pemetaan"),
    "source.alerts": ("Alerts of this source", "Peringatan sumber ini"),
    "source.sync_now": ("Sync now", "Sinkronkan sekarang"),
    "source.test": ("Test connection", "Uji koneksi"),
    "source.discover": ("Discover", "Temukan bidang"),
    "source.enable": ("Enable", "Aktifkan"),
    "source.disable": ("Disable", "Nonaktifkan"),
    "source.maintenance": ("Maintenance", "Pemeliharaan"),
    "source.edit": ("Edit", "Ubah"),
    "source.sync_started": ("Sync started (run {run}).", "Sinkronisasi dimulai (proses {run})."),
    "source.status_set": ("Status set to {status}.", "Status diubah menjadi {status}."),
    "source.saved": ("Source saved.", "Sumber disimpan."),
    "source.not_found": ("No source {id}.", "Sumber {id} tidak ada."),
    "source.refresh": ("Refresh interval", "Interval pembaruan"),
    "source.priority": ("Priority", "Prioritas"),
    "source.last_error": ("Last error", "Galat terakhir"),
    "source.primary": ("primary", "utama"),
    "source.backup": ("backup", "cadangan"),
    # probe results
    "probe.ok": ("OK", "OK"),
    "probe.failed": ("Failed", "Gagal"),
    "probe.fields": ("Fields found", "Bidang ditemukan"),
    "probe.field": ("Field", "Bidang"),
    "probe.kind": ("Kind", "Jenis"),
    "probe.samples": ("Sample values", "Contoh nilai"),
    "probe.preview": ("Preview of mapped rows", "Pratinjau baris hasil pemetaan"),
    "probe.no_records": ("No record found.", "Tidak ada rekaman."),
    # form
    "form.new_title": ("Add a source", "Tambah sumber"),
    "form.edit_title": ("Edit source {id}", "Ubah sumber {id}"),
    "form.pick_type": ("Choose a type", "Pilih jenis"),
    "form.or_template": ("or start from a template", "atau mulai dari templat"),
    "form.general": ("Source", "Sumber"),
    "form.connection": ("Connection ({type})", "Koneksi ({type})"),
    "form.more_options": ("More options", "Opsi lainnya"),
    "form.secrets": ("Secrets (write-only)", "Rahasia (hanya-tulis)"),
    "form.secrets_hint": (
        "Stored encrypted and never shown again. Leave a value empty to keep it; "
        "${env:NAME} reads an environment variable.",
        "Disimpan terenkripsi dan tidak pernah ditampilkan lagi. Biarkan kosong untuk "
        "mempertahankan; ${env:NAME} membaca variabel lingkungan.",
    ),
    "form.secret_name": ("Name", "Nama"),
    "form.secret_value": ("Value", "Nilai"),
    "form.mapping": ("Mapping", "Pemetaan"),
    "form.mapping_hint": (
        "Leave the field rows empty to map every field automatically.",
        "Kosongkan baris bidang untuk memetakan semua bidang secara otomatis.",
    ),
    "form.target_column": ("Target column", "Kolom tujuan"),
    "form.source_field": ("Source field", "Bidang sumber"),
    "form.field_type": ("Type", "Tipe"),
    "form.transform": ("Transform (expression on value)", "Transformasi (ekspresi atas value)"),
    "form.add_row": ("Add row", "Tambah baris"),
    "form.advanced_mapping": ("Other mapping options (JSON)", "Opsi pemetaan lain (JSON)"),
    "form.save": ("Save", "Simpan"),
    "form.cancel": ("Cancel", "Batal"),
    "form.preview": ("Preview mapping", "Pratinjau pemetaan"),
    "form.fix": (
        "Please fix the problems marked below.",
        "Mohon perbaiki masalah yang ditandai di bawah.",
    ),
    "form.required": ("required", "wajib"),
    "form.default": ("default", "bawaan"),
    "form.bad_json": ("invalid JSON: {error}", "JSON tidak valid: {error}"),
    "form.lines_hint": ("one per line", "satu per baris"),
    "form.keys_hint": ("comma separated", "dipisah koma"),
    "form.template": ("Template", "Templat"),
    "field.source_id": ("Source id", "Id sumber"),
    "field.name": ("Name", "Nama"),
    "field.description": ("Description", "Deskripsi"),
    "field.category": ("Category", "Kategori"),
    "field.priority": ("Priority (1 high … 3 low)", "Prioritas (1 tinggi … 3 rendah)"),
    "field.refresh_interval": ("Refresh interval (s)", "Interval pembaruan (dtk)"),
    "field.schedule": ("Cron schedule (optional)", "Jadwal cron (opsional)"),
    "field.target_table": ("Target table", "Tabel tujuan"),
    "field.sync_strategy": ("Sync strategy", "Strategi sinkron"),
    "field.records_path": ("Records path", "Jalur rekaman"),
    "field.primary_key": ("Primary key", "Kunci utama"),
    "field.cursor_field": ("Cursor field (incremental)", "Bidang kursor (inkremental)"),
    "field.on_invalid": ("Invalid records", "Rekaman tidak valid"),
    # alerts
    "alerts.title": ("Alerts", "Peringatan"),
    "alerts.none": ("No alert.", "Tidak ada peringatan."),
    "alerts.acknowledge": ("Acknowledge", "Tandai sudah dilihat"),
    "alerts.all": ("All", "Semua"),
    "alerts.by": ("by {user}", "oleh {user}"),
    "alert.open": ("open", "terbuka"),
    "alert.acknowledged": ("acknowledged", "sudah dilihat"),
    "alert.resolved": ("resolved", "selesai"),
    "rule.consecutive_failures": ("consecutive failures", "gagal berturut-turut"),
    "rule.stale": ("stale", "basi"),
    "rule.rejected_rows": ("rejected rows", "baris ditolak"),
    "rule.realtime_silence": ("realtime silence", "data realtime berhenti"),
    "rule.schema_change": ("schema change", "perubahan skema"),
    "rule.spool_filling": ("spool filling", "spool hampir penuh"),
    "severity.critical": ("critical", "kritis"),
    "severity.warning": ("warning", "peringatan"),
    "severity.info": ("info", "info"),
    # errors
    "error.forbidden": (
        "Your role ({role}) may not do this.",
        "Peran Anda ({role}) tidak boleh melakukan ini.",
    ),
    "error.csrf": (
        "The form is out of date: reload the page and try again.",
        "Formulir sudah usang: muat ulang halaman lalu coba lagi.",
    ),
    "error.title": ("Something went wrong", "Terjadi kesalahan"),
    "error.back": ("Back", "Kembali"),
    "times.zone": ("Times in {zone}", "Waktu dalam {zone}"),
}


def translator(language: str) -> Callable[..., str]:
    index = 1 if language == "id" else 0

    def t(key: str, **values: object) -> str:
        text = MESSAGES[key][index]
        return text.format(**values) if values else text

    return t


def relative(when: datetime | None, now: datetime, t: Callable[..., str]) -> str:
    """``5 min ago`` / ``in 2 h`` / ``never``, in the user's language."""
    if when is None:
        return t("never")
    seconds = (when - now).total_seconds()
    span = abs(seconds)
    if span < 5:
        return t("now")
    if span < 120:
        amount = t("unit.s", n=int(span))
    elif span < 7200:
        amount = t("unit.min", n=int(span // 60))
    elif span < 172800:
        amount = t("unit.h", n=int(span // 3600))
    else:
        amount = t("unit.d", n=int(span // 86400))
    return t("in", x=amount) if seconds > 0 else t("ago", x=amount)
