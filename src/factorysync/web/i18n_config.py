"""The connection settings of the source form in Bahasa Indonesia (issue #23).

The form's ``connection_config`` inputs come from each connection type's config model
(:mod:`factorysync.web.config_form`): a field's label is its ``title`` (or its key made
readable), its help text its ``description``. The connector modules write those in
English, and they also make docs/configuration.md, which stays English. Here are the
same texts in Bahasa Indonesia, for every field of every built-in type's models (the
preset models a type picks per source type, csv and Excel files, included).

The tables are keyed by the English text itself, as the model says it (runs of white
space count as one space), not by connection type and key:

* a text changed in a connector module is no longer found, so the page shows the new
  English text rather than a stale translation, and tests/web/test_i18n_config.py fails
  on the field without an Indonesian text and on the pair nobody uses any more;
* a text several models share (file paths, time zones, micro-batches) is translated once;
* a plugin's fields are not in the tables and show the plugin's own English text.

:func:`config_text` is the lookup the form calls at render time.
"""

from __future__ import annotations

from factorysync.web.i18n_config_devices import DEVICE_HELP
from factorysync.web.i18n_config_files import FILE_HELP
from factorysync.web.i18n_config_services import SERVICE_HELP

# (English title, Bahasa Indonesia), by the connection type that first shows it. A field
# without a title is labelled with its key made readable ("skip_rows": "Skip rows").
TITLES: tuple[tuple[str, str], ...] = (
    # file
    ("File path", "Path berkas"),
    ("Text encoding", "Encoding teks"),
    ("Records path", "Path rekaman"),
    ("Time zone of naive timestamps", "Zona waktu stempel waktu tanpa zona"),
    ("File format", "Format berkas"),
    ("Read again when the file changes", "Baca lagi saat berkas berubah"),
    ("File name", "Nama berkas"),
    ("Legacy path", "Path lama"),
    ("File type", "Jenis berkas"),
    ("Column separator", "Pemisah kolom"),
    ("Quotechar", "Karakter kutip"),
    ("Escapechar", "Karakter escape"),
    ("First row holds the column names", "Baris pertama berisi nama kolom"),
    ("Column names", "Nama kolom"),
    ("Skip rows", "Baris yang dilewati"),
    ("Decimal mark", "Tanda desimal"),
    ("Thousands", "Pemisah ribuan"),
    ("Date formats", "Format tanggal"),
    ("Null values", "Nilai kosong (null)"),
    ("Column types", "Tipe kolom"),
    ("Infer types", "Tebak tipe kolom"),
    ("Ragged rows", "Baris tidak rata"),
    ("Sheet", "Lembar kerja"),
    ("Header row", "Baris header"),
    ("Cell range", "Rentang sel"),
    # database
    ("Database server type", "Jenis server basis data"),
    ("Host", "Host server"),
    ("Port", "Nomor port"),
    ("Database name", "Nama basis data"),
    ("Table or view", "Tabel atau view"),
    ("Driver", "Driver basis data"),
    ("Schema", "Skema"),
    ("SQL query (instead of a table)", "Query SQL (sebagai ganti tabel)"),
    ("Columns", "Kolom"),
    ("Connection pool size", "Ukuran pool koneksi"),
    ("Connect timeout", "Batas waktu koneksi"),
    ("Query timeout", "Batas waktu query"),
    # api
    ("URL", "URL"),
    ("Authentication", "Autentikasi"),
    ("Base URL", "URL dasar"),
    ("Endpoint path", "Path endpoint"),
    ("HTTP method", "Metode HTTP"),
    ("Headers", "Header permintaan"),
    ("Params", "Parameter query"),
    ("Json", "Body JSON"),
    ("Pagination", "Paginasi"),
    ("Cursor format", "Format kursor"),
    ("Timeout (s)", "Batas waktu (detik)"),
    ("Max response bytes", "Ukuran respons maksimal (byte)"),
    ("Retries", "Jumlah percobaan ulang"),
    ("Retry max wait s", "Jeda percobaan ulang maksimal (detik)"),
    ("Max redirects", "Pengalihan maksimal"),
    ("Rate limit", "Batas laju permintaan"),
    ("Rate limit key", "Kunci batas laju"),
    ("Verify", "Verifikasi TLS"),
    # artisan
    ("Command", "Perintah"),
    ("Parameters", "Parameter"),
    ("Working directory", "Direktori kerja"),
    ("Output format", "Format keluaran"),
    ("Encoding", "Encoding keluaran"),
    ("Csv", "Pengaturan CSV"),
    ("Timezone", "Zona waktu"),
    ("Environment", "Variabel lingkungan"),
    ("Max output bytes", "Keluaran maksimal (byte)"),
    ("Php", "Program PHP"),
    ("Artisan", "Skrip artisan"),
    # mqtt
    ("Broker host", "Host broker"),
    ("Broker port", "Port broker"),
    ("Topics", "Topic"),
    ("Quality of service", "Kualitas layanan (QoS)"),
    ("Topic template", "Templat topic"),
    ("Client id", "Client id MQTT"),
    ("TLS", "TLS"),
    ("Payload format", "Format payload"),
    ("Sparkplug rebirth", "Rebirth Sparkplug"),
    ("Protocol", "Protokol"),
    ("Clean session", "Sesi bersih"),
    ("Session expiry s", "Masa berlaku sesi (detik)"),
    ("Keepalive s", "Keep-alive (detik)"),
    ("Topic field", "Bidang topic"),
    ("Received at field", "Bidang waktu diterima"),
    ("Batch rows", "Baris per batch"),
    ("Batch ms", "Tunggu batch (ms)"),
    ("Shared group", "Grup langganan bersama"),
    # opcua
    ("Server endpoint", "Endpoint server"),
    ("Nodes", "Node"),
    ("Security mode", "Mode keamanan"),
    ("Security policy", "Kebijakan keamanan"),
    ("Certificate file", "Berkas sertifikat"),
    ("Private key file", "Berkas kunci privat"),
    ("Server certificate file", "Berkas sertifikat server"),
    ("Sampling interval (ms)", "Interval sampling (ms)"),
    ("Publishing interval ms", "Interval publikasi (ms)"),
    ("Queue size", "Ukuran antrean"),
    ("Fields", "Bidang tetap"),
    ("History backfill", "Isi ulang dari riwayat"),
    ("History backfill max h", "Isi ulang riwayat maksimal (jam)"),
    # modbus
    ("Device host", "Host perangkat"),
    ("Unit id", "ID unit"),
    ("Registers", "Register"),
    ("Poll interval (ms)", "Interval polling (ms)"),
    ("Device", "Nama perangkat"),
    ("Max gap", "Celah maksimal"),
    ("Max registers per read", "Register maksimal per baca"),
    ("Max bits per read", "Bit maksimal per baca"),
    # s7
    ("Rack", "Rack CPU"),
    ("Slot", "Slot CPU"),
    ("Tags", "Tag"),
    ("Timeout", "Batas waktu"),
    # push
    ("Most records per request", "Rekaman maksimal per permintaan"),
    ("Rows per micro-batch", "Baris per micro-batch"),
    ("Micro-batch wait (ms)", "Tunggu micro-batch (ms)"),
)
# Every block of (English, Bahasa Indonesia) pairs, by name (the tests read them apart).
BLOCKS: dict[str, tuple[tuple[str, str], ...]] = {
    "titles": TITLES,
    "file_help": FILE_HELP,
    "service_help": SERVICE_HELP,
    "device_help": DEVICE_HELP,
}


def plain(text: str) -> str:
    """``text`` with each run of white space made one space: the tables' key."""
    return " ".join(text.split())


# English → language → text. English is the models' own text, so it needs no table.
CONFIG_TEXTS: dict[str, dict[str, str]] = {
    plain(english): {"id": bahasa} for block in BLOCKS.values() for english, bahasa in block
}


def config_text(english: str, language: str) -> str:
    """A config field's title or help text in ``language``: the table's text when it
    has one, else ``english`` as the model says it (English pages, plugins' fields)."""
    found = CONFIG_TEXTS.get(plain(english))
    return found.get(language, english) if found is not None else english
