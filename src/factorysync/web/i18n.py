"""Every label of the console in English (``en``) and Bahasa Indonesia (``id``).

Templates call ``t("key")``; a key missing from the table is a bug, caught by the tests
(every key used in a template must be here in both languages, with the same
placeholders: tests/web/test_i18n_complete.py, which also renders every page in both).

:data:`MESSAGES` is assembled from blocks: the core labels and the texts about what
happened (alerts, problems, run errors: :mod:`factorysync.web.messages` renders them)
in ``i18n_texts.py`` and ``i18n_events.py``, the data browser's in ``i18n_data.py``,
newer features' below.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from factorysync.web.i18n_data import DATA_MESSAGES  # data browser (issue #23)
from factorysync.web.i18n_events import EVENT_TEXTS
from factorysync.web.i18n_forward import FORWARD_TEXTS  # central store
from factorysync.web.i18n_texts import CONSOLE_TEXTS

LANGUAGES = {"en": "English", "id": "Bahasa Indonesia"}

MESSAGES: dict[str, tuple[str, str]] = {
    # key: (English, Bahasa Indonesia)
    # The core labels (login, statuses, overview, lists, source page, alerts, errors)
    # are in i18n_texts.py (CONSOLE_TEXTS); add a feature's keys as a block here, or
    # in a module of its own merged below, as the data browser does.
    # source lifecycle: delete, duplicate, reset (web/lifecycle.py)
    "life.delete": ("Delete…", "Hapus…"),
    "life.duplicate": ("Duplicate…", "Duplikat…"),
    "life.reset": ("Reset…", "Atur ulang…"),
    "life.cancel": ("Cancel", "Batal"),
    "life.delete_title": ("Delete source {name}?", "Hapus sumber {name}?"),
    "life.delete_always": (
        "Its connections (with their secrets), mappings and sync state (cursors, stream "
        "state) are removed, and its open alerts resolved.",
        "Koneksinya (beserta rahasianya), pemetaan, dan status sinkronisasinya (kursor, "
        "status stream) dihapus, dan peringatan terbukanya diselesaikan.",
    ),
    "life.delete_kept": (
        "Its run history ({runs} runs) and the event log are kept.",
        "Riwayat prosesnya ({runs} proses) dan log peristiwa tetap disimpan.",
    ),
    "life.drop_data": (
        "Also delete the {n} rows this source wrote and its {q} quarantined records:",
        "Hapus juga {n} baris yang ditulis sumber ini dan {q} rekaman karantinanya:",
    ),
    "life.rows_in": ("{n} rows in table {table}", "{n} baris di tabel {table}"),
    "life.table_missing": (
        "table {table}: not created yet",
        "tabel {table}: belum dibuat",
    ),
    "life.table_dropped_if": (
        "the table is dropped (no other source writes it)",
        "tabel dihapus (tidak ada sumber lain yang menulisnya)",
    ),
    "life.table_shared": (
        "the table stays: {sources} also write it",
        "tabel tetap ada: {sources} juga menulisnya",
    ),
    "life.table_other_rows": (
        "the table stays: {n} rows of other sources are left in it",
        "tabel tetap ada: masih ada {n} baris dari sumber lain",
    ),
    "life.keep_note": (
        "Unchecked, the rows stay in their tables: a source added again with the same id "
        "takes them up again.",
        "Jika tidak dicentang, baris tetap di tabelnya: sumber yang ditambahkan lagi dengan "
        "id yang sama akan memakainya kembali.",
    ),
    "life.delete_confirm": ("Delete source", "Hapus sumber"),
    "life.deleted": ("Source {id} deleted.", "Sumber {id} telah dihapus."),
    "life.rows_deleted": (
        "{n} rows deleted from table {table}",
        "{n} baris dihapus dari tabel {table}",
    ),
    "life.table_dropped": ("table dropped", "tabel dihapus"),
    "life.quarantine_deleted": (
        "{n} quarantined records deleted",
        "{n} rekaman karantina dihapus",
    ),
    "life.rows_kept": (
        "The rows it synced stay in their target tables.",
        "Baris yang sudah disinkronkan tetap ada di tabel tujuannya.",
    ),
    "life.history_kept": (
        "Its run history stays readable (factorysync history ID, /api/sources/ID/history).",
        "Riwayat prosesnya tetap dapat dibaca (factorysync history ID, /api/sources/ID/history).",
    ),
    "life.duplicate_title": ("Duplicate {name}", "Duplikat {name}"),
    "life.copy_name": ("{name} (copy)", "{name} (salinan)"),
    "life.duplicate_secrets": (
        "Secrets (passwords, keys, tokens) are copied inside the server, encrypted: they "
        "are never sent to this page. The copy's form shows them as *** and keeps them.",
        "Rahasia (kata sandi, kunci, token) disalin di dalam server dalam bentuk "
        "terenkripsi: tidak pernah dikirim ke halaman ini. Formulir salinan menampilkannya "
        "sebagai *** dan mempertahankannya.",
    ),
    "life.duplicate_inactive": (
        "The copy is saved at once, inactive: it writes the same target tables as the "
        "original, so change its mappings in the form that opens next, then enable it.",
        "Salinan langsung disimpan dalam keadaan nonaktif: salinan menulis ke tabel tujuan "
        "yang sama dengan aslinya, jadi ubah pemetaannya di formulir berikutnya, lalu "
        "aktifkan.",
    ),
    "life.duplicate_confirm": ("Create the copy", "Buat salinan"),
    "life.reset_title": ("Reset {name}?", "Atur ulang {name}?"),
    "life.reset_what": (
        "The cursor and connector state are forgotten: the next run reads the whole "
        "source again. Rows already synced stay; the reset is logged.",
        "Kursor dan status konektor dilupakan: proses berikutnya membaca seluruh sumber "
        "lagi. Baris yang sudah disinkronkan tetap ada; pengaturan ulang dicatat.",
    ),
    "life.reset_all": ("every mapping", "semua pemetaan"),
    "life.reset_confirm": ("Reset", "Atur ulang"),
    "life.reset_done": (
        "Reset {tables}: the next run reads the whole source again.",
        "{tables} diatur ulang: proses berikutnya membaca seluruh sumber lagi.",
    ),
    "life.reset_stream_done": (
        "Reset {tables}: the stream starts again from scratch at the next registry scan.",
        "{tables} diatur ulang: aliran dimulai lagi dari awal pada pemindaian registri berikutnya.",
    ),
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
    "form.kind": ("kind", "jenis"),
    "form.kind_pick": ("choose a kind…", "pilih jenis…"),
    "form.bad_json": ("invalid JSON: {error}", "JSON tidak valid: {error}"),
    "form.lines_hint": ("one per line", "satu per baris"),
    "form.keys_hint": ("comma separated", "dipisah koma"),
    "form.template": ("Template", "Templat"),
    # source form that guides (add/edit: cards, secrets by key, discover fills the form)
    "guide.pick_hint": (
        "What does the data come from? Pick one; the form asks only for what it needs.",
        "Dari mana datanya berasal? Pilih satu; formulir hanya menanyakan yang diperlukan.",
    ),
    "guide.steps": (
        "Fill in the connection, then Test connection and Discover: the target table, "
        "key and fields are filled in for you. Preview, then Save.",
        "Isi koneksi, lalu Uji koneksi dan Temukan bidang: tabel tujuan, kunci, dan "
        "bidang diisi otomatis. Pratinjau, lalu Simpan.",
    ),
    "guide.stored": ("stored, leave empty to keep", "tersimpan, kosongkan untuk mempertahankan"),
    "guide.other_secrets": ("Other secrets", "Rahasia lain"),
    "guide.filled": (
        "Target table, key and fields were filled in from what was found (only where "
        "they were empty). Check them, then Preview.",
        "Tabel tujuan, kunci, dan bidang diisi dari hasil temuan (hanya yang masih "
        "kosong). Periksa, lalu Pratinjau.",
    ),
    "guide.table": ("Suggested target table", "Tabel tujuan yang disarankan"),
    "guide.key": ("Key", "Kunci"),
    "guide.no_key": (
        "No key found: rows are added as they are read. Name the key column(s) to update "
        "rows in place.",
        "Kunci tidak ditemukan: baris ditambahkan apa adanya. Isi kolom kunci agar baris "
        "diperbarui di tempat.",
    ),
    "guide.column": ("Column", "Kolom"),
    "guide.note": ("Note", "Catatan"),
    "guide.raw": ("Raw records", "Rekaman mentah"),
    "guide.mapped": ("Mapped rows", "Baris hasil pemetaan"),
    "guide.browse": ("Variables on the server", "Variabel di server"),
    "guide.browse_hint": (
        "Tick the variables to read, then Use ticked nodes.",
        "Centang variabel yang akan dibaca, lalu Pakai node yang dicentang.",
    ),
    "guide.node_id": ("Node id", "Id node"),
    "guide.path": ("Browse path", "Jalur"),
    "guide.data_type": ("Data type", "Tipe data"),
    "guide.access": ("Access", "Akses"),
    "guide.value": ("Current value", "Nilai saat ini"),
    "guide.use_nodes": ("Use ticked nodes", "Pakai node yang dicentang"),
    "guide.pick": ("Use", "Pakai"),
    "kind.json": (
        "A JSON or NDJSON file (or files matching a pattern) in a data folder.",
        "Berkas JSON atau NDJSON (atau berkas yang cocok dengan pola) di folder data.",
    ),
    "kind.csv": (
        "A CSV file (or files matching a pattern) in a data folder.",
        "Berkas CSV (atau berkas yang cocok dengan pola) di folder data.",
    ),
    "kind.excel": (
        "A sheet of an Excel workbook in a data folder.",
        "Satu lembar kerja Excel di folder data.",
    ),
    "kind.database": (
        "A table, view or query of PostgreSQL, MySQL, MariaDB, SQL Server or SQLite.",
        "Tabel, view, atau kueri PostgreSQL, MySQL, MariaDB, SQL Server, atau SQLite.",
    ),
    "kind.api": (
        "JSON records from an HTTP API (REST), with paging and authentication.",
        "Rekaman JSON dari API HTTP (REST), dengan paging dan autentikasi.",
    ),
    "kind.command": (
        "The output of an allowed program run on this server (JSON or CSV).",
        "Keluaran program yang diizinkan yang dijalankan di server ini (JSON atau CSV).",
    ),
    "kind.artisan": (
        "The output of a Laravel artisan command.",
        "Keluaran perintah artisan Laravel.",
    ),
    "kind.mqtt": (
        "Messages on MQTT topics of a broker, written as they arrive.",
        "Pesan pada topik MQTT sebuah broker, ditulis saat tiba.",
    ),
    "kind.opcua": (
        "Value changes of the variables of an OPC UA server (PLC, SCADA).",
        "Perubahan nilai variabel server OPC UA (PLC, SCADA).",
    ),
    "kind.modbus": (
        "Registers of a Modbus TCP device, polled and written as they change.",
        "Register perangkat Modbus TCP, dibaca berkala dan ditulis saat berubah.",
    ),
    "kind.s7": (
        "Tags of a Siemens S7 PLC, polled and written as they change.",
        "Tag PLC Siemens S7, dibaca berkala dan ditulis saat berubah.",
    ),
    "kind.push": (
        "Records that another system posts to factorysync over HTTP.",
        "Rekaman yang dikirim sistem lain ke factorysync melalui HTTP.",
    ),
    "secret.username": ("User name", "Nama pengguna"),
    "secret.password": ("Password", "Kata sandi"),
    "secret.token": ("Bearer token", "Token bearer"),
    "secret.api_key": ("API key", "Kunci API"),
    "secret.client_id": ("OAuth2 client id", "Id klien OAuth2"),
    "secret.client_secret": ("OAuth2 client secret", "Rahasia klien OAuth2"),
    "field.source_id": ("Source id", "Id sumber"),
    "field.name": ("Name", "Nama"),
    "field.description": ("Description", "Deskripsi"),
    "field.category": ("Category", "Kategori"),
    "field.site": ("Site (plant)", "Lokasi (pabrik)"),
    "field.priority": ("Priority (1 high … 3 low)", "Prioritas (1 tinggi … 3 rendah)"),
    "field.refresh_interval": ("Refresh interval (s)", "Interval pembaruan (dtk)"),
    "field.schedule": ("Cron schedule (optional)", "Jadwal cron (opsional)"),
    "field.target_table": ("Target table", "Tabel tujuan"),
    "field.sync_strategy": ("Sync strategy", "Strategi sinkron"),
    "field.records_path": ("Records path", "Jalur rekaman"),
    "field.primary_key": ("Primary key", "Kunci utama"),
    "field.cursor_field": ("Cursor field (incremental)", "Bidang kursor (inkremental)"),
    "field.on_invalid": ("Invalid records", "Rekaman tidak valid"),
    # phone layout & health at a glance (charts, quarantine paging, realtime overview)
    "nav.menu": ("Menu", "Navigasi"),
    "chart.months": (
        "Jan,Feb,Mar,Apr,May,Jun,Jul,Aug,Sep,Oct,Nov,Dec",
        "Jan,Feb,Mar,Apr,Mei,Jun,Jul,Agu,Sep,Okt,Nov,Des",
    ),
    "chart.run_tip": (
        "Run {run} · started {start} · {duration} · {rows} rows · {status}",
        "Proses {run} · mulai {start} · {duration} · {rows} baris · {status}",
    ),
    "chart.rows_per_s": ("rows/s", "baris/detik"),
    "chart.hour_tip": ("{hour}: {rows} rows ({runs} runs)", "{hour}: {rows} baris ({runs} proses)"),
    "quarantine.shown": (
        "{first}–{last} of {total} entries, most recently refused first.",
        "{first}–{last} dari {total} entri, yang terakhir ditolak lebih dulu.",
    ),
    "quarantine.pages": ("Quarantine pages", "Halaman karantina"),
    "quarantine.prev": ("Previous", "Sebelumnya"),
    "quarantine.next": ("Next", "Berikutnya"),
    "quarantine.export_all": ("Export all {total} as CSV", "Ekspor semua {total} sebagai CSV"),
    # sources list and alerts in pages (issue #23: pages fast with 500 sources; web/views)
    "sources.shown": (
        "{first}–{last} of {total} sources, failing ones first.",
        "{first}–{last} dari {total} sumber, yang gagal lebih dulu.",
    ),
    "sources.pages": ("Pages of sources", "Halaman daftar sumber"),
    "alerts.shown": (
        "{first}–{last} of {total} alerts.",
        "{first}–{last} dari {total} peringatan.",
    ),
    "alerts.pages": ("Pages of alerts", "Halaman peringatan"),
    "pager.prev": ("Previous", "Sebelumnya"),
    "pager.next": ("Next", "Berikutnya"),
    "overview.realtime": ("Realtime sources", "Sumber waktu nyata"),
    "overview.no_realtime": (
        "No subscription or push source.",
        "Tidak ada sumber langganan atau push.",
    ),
}
# Data browser (issue #23): its labels, kept in their own module.
MESSAGES.update(DATA_MESSAGES)
MESSAGES.update(FORWARD_TEXTS)
# The core labels first (a block above may refine one), then what happened (alerts,
# problems, run errors): i18n_texts.py, i18n_events.py.
MESSAGES = {**CONSOLE_TEXTS, **MESSAGES, **EVENT_TEXTS}


def translator(language: str) -> Callable[..., str]:
    index = 1 if language == "id" else 0

    def t(key: str, **values: object) -> str:
        text = MESSAGES[key][index]
        return text.format(**values) if values else text

    t.language = "id" if index else "en"  # type: ignore[attr-defined]
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
