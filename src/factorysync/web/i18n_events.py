"""What the console says about what happened, in English and Bahasa Indonesia: alerts by
rule, validation problems by kind, run errors, notices, stored codes and the built-in
templates (merged into :data:`factorysync.web.i18n.MESSAGES`;
:mod:`factorysync.web.messages` renders them).

A ``{placeholder}`` that holds text from outside (a driver's message, a path, a value)
receives it quoted “like this” and verbatim.
"""

from __future__ import annotations

# key: (English, Bahasa Indonesia)
EVENT_TEXTS: dict[str, tuple[str, str]] = {
    # -- alerts, rendered from their rule and details ---------------------------------
    "alert.consecutive_failures": (
        "{n} failed runs in a row; last error: {error}",
        "{n} kali gagal berturut-turut; galat terakhir: {error}",
    ),
    "alert.consecutive_failures_short": (
        "{n} failed runs in a row",
        "{n} kali gagal berturut-turut",
    ),
    "alert.stale": (
        "last success {quiet} ago (expected every {every})",
        "sukses terakhir {quiet} lalu (seharusnya setiap {every})",
    ),
    "alert.stale_never": (
        "no success since it was added, {quiet} ago (expected every {every})",
        "belum pernah sukses sejak ditambahkan {quiet} lalu (seharusnya setiap {every})",
    ),
    "alert.stale_short": (
        "no successful run for {quiet}",
        "tidak ada proses yang berhasil selama {quiet}",
    ),
    "alert.rejected_rows": (
        "run {run} rejected {rejected} of {total} records ({share})",
        "proses {run} menolak {rejected} dari {total} rekaman ({share})",
    ),
    "alert.realtime_silence": (
        "no realtime data for {quiet}",
        "tidak ada data realtime selama {quiet}",
    ),
    "alert.schema_change": (
        "target schema changed: {changes}",
        "skema tabel tujuan berubah: {changes}",
    ),
    "alert.schema_refused": (
        "target schema change refused (schema_contract freeze), run failed: {changes}",
        "perubahan skema tabel tujuan ditolak (schema_contract freeze), proses gagal: {changes}",
    ),
    "alert.schema_more": ("{changes} and {n} more", "{changes} dan {n} lainnya"),
    "alert.column_added": ("{column} added ({type})", "{column} ditambahkan ({type})"),
    "alert.column_dropped": ("{column} dropped (was {type})", "{column} dihapus (semula {type})"),
    "alert.column_changed": ("{column} changed {old} → {new}", "{column} berubah {old} → {new}"),
    "alert.spool_filling": (
        "the local spool {spool} is {share} full ({used} of {max} MB) because the store is "
        "unreachable; {n} message(s) of this source wait in it. Once it is full no message "
        "is acknowledged: bring the store back, or raise FACTORYSYNC_SPOOL_MAX_MB",
        "spool lokal {spool} sudah {share} penuh ({used} dari {max} MB) karena penyimpanan "
        "tidak dapat dihubungi; {n} pesan dari sumber ini menunggu di dalamnya. Setelah "
        "penuh, tidak ada pesan yang dikonfirmasi: pulihkan penyimpanan, atau naikkan "
        "FACTORYSYNC_SPOOL_MAX_MB",
    ),
    # -- run errors: the frame factorysync builds; the rest is quoted -----------------
    "run.interrupted": (
        "interrupted: the process running this sync stopped",
        "terputus: proses yang menjalankan sinkronisasi ini berhenti",
    ),
    "run.connection_failed": (
        "connection {name} failed: {error}",
        "koneksi {name} gagal: {error}",
    ),
    "run.delete_skipped": (
        "{n} record(s) could not be read with a key ({counts}): the delete phase was "
        "skipped, so rows missing from this snapshot were kept until a full sync reads "
        "every record",
        "{n} rekaman tidak dapat dibaca dengan kunci ({counts}): tahap penghapusan "
        "dilewati, jadi baris yang tidak ada di snapshot ini dipertahankan sampai "
        "sinkronisasi penuh membaca semua rekaman",
    ),
    "run.error": ("error: {error}", "galat: {error}"),
    "probe.message": ("answer: {text}", "jawaban: {text}"),
    # -- stored codes in words: cadence, sync types, triggers ---------------------------
    "cadence.subscription": (
        "continuous ({type} subscription)",
        "terus-menerus (langganan {type})",
    ),
    "cadence.push": (
        "when records are pushed (POST /api/ingest)",
        "saat rekaman dikirim (POST /api/ingest)",
    ),
    "cadence.cron": ("cron {schedule} ({zone})", "jadwal cron {schedule} ({zone})"),
    "cadence.interval": ("every {every} ({by})", "setiap {every} ({by})"),
    "cadence.default": ("default", "bawaan"),
    "sync.full": ("full", "penuh"),
    "sync.incremental": ("incremental", "inkremental"),
    "sync.realtime": ("realtime", "waktu nyata"),
    "sync.mixed": ("mixed", "campuran"),
    "sync.replay": ("replay", "proses ulang"),
    "sync.retention": ("retention", "retensi"),
    "sync.report": ("report", "laporan"),
    "trigger.manual": ("manual", "secara manual"),
    "trigger.schedule": ("schedule", "jadwal"),
    "trigger.watch": ("file changed", "berkas berubah"),
    "trigger.demo": ("demo", "demo (contoh)"),
    "trigger.console": ("console", "konsol"),
    "trigger.api": ("API", "API"),
    "trigger.cli": ("command line", "baris perintah"),
    "trigger.by": ("{origin}: {who}", "{origin}: {who}"),
    "form.type_auto": ("auto", "otomatis"),
    # -- labels of source types that are words, and the built-in templates ------------
    "kind_label.database": ("Database", "Basis data"),
    "kind_label.command": ("Command", "Perintah"),
    "kind_label.push": ("HTTP push", "Kiriman HTTP"),
    "template.json_file": ("JSON file", "Berkas JSON"),
    "template.json_file.about": (
        "A JSON document (an array, or an object holding the records) or a glob of them.",
        "Dokumen JSON (sebuah array, atau objek yang memuat rekaman) atau glob dari beberapa.",
    ),
    "template.csv_file": ("CSV file", "Berkas CSV"),
    "template.csv_file.about": (
        "CSV exports; a glob picks up new files. Semicolons and decimal commas are common "
        "in plant exports: set delimiter and decimal.",
        "Ekspor CSV; glob mengambil berkas baru. Titik koma dan koma desimal lazim di ekspor "
        "pabrik: atur delimiter dan decimal.",
    ),
    "template.excel_workbook": ("Excel workbook", "Buku kerja Excel"),
    "template.excel_workbook.about": (
        "One sheet of .xlsx/.xls workbooks (name or 0-based index), header in the first row.",
        "Satu lembar buku kerja .xlsx/.xls (nama atau indeks mulai 0), judul kolom di baris "
        "pertama.",
    ),
    "template.postgresql_table": ("PostgreSQL table", "Tabel PostgreSQL"),
    "template.postgresql_table.about": (
        "Rows of one PostgreSQL table (or a query), streamed; incremental by a cursor column.",
        "Baris satu tabel PostgreSQL (atau kueri), dialirkan; inkremental lewat kolom kursor.",
    ),
    "template.mysql_table": ("MySQL / MariaDB table", "Tabel MySQL / MariaDB"),
    "template.mysql_table.about": (
        "Rows of one MySQL / MariaDB table (or a query), streamed; incremental by a cursor column.",
        "Baris satu tabel MySQL / MariaDB (atau kueri), dialirkan; inkremental lewat kolom kursor.",
    ),
    "template.mssql_table": ("SQL Server table", "Tabel SQL Server"),
    "template.mssql_table.about": (
        "Rows of one SQL Server table (or a query), streamed; incremental by a cursor column.",
        "Baris satu tabel SQL Server (atau kueri), dialirkan; inkremental lewat kolom kursor.",
    ),
    "template.sqlite_file": ("SQLite file", "Berkas SQLite"),
    "template.sqlite_file.about": (
        "A table of an SQLite database file inside the data roots (opened read-only).",
        "Tabel dari berkas basis data SQLite di dalam data root (dibuka hanya-baca).",
    ),
    "template.rest_api": ("REST API", "API REST"),
    "template.rest_api.about": (
        "JSON from an HTTP endpoint of a machine or MES, with a bearer token.",
        "JSON dari endpoint HTTP sebuah mesin atau MES, dengan bearer token.",
    ),
    "template.laravel_artisan": ("Laravel artisan command", "Perintah artisan Laravel"),
    "template.laravel_artisan.about": (
        "Runs 'php artisan COMMAND' in the Laravel project and reads its JSON output "
        "(php must be on FACTORYSYNC_COMMAND_ALLOWLIST).",
        "Menjalankan 'php artisan COMMAND' di proyek Laravel dan membaca keluaran JSON-nya "
        "(php harus ada di FACTORYSYNC_COMMAND_ALLOWLIST).",
    ),
    "template.mqtt_topic": ("MQTT topic", "Topik MQTT"),
    "template.mqtt_topic.about": (
        "Machine status messages from an MQTT broker (live).",
        "Pesan status mesin dari broker MQTT (langsung).",
    ),
    "template.opcua_nodes": ("OPC UA nodes", "Node OPC UA"),
    "template.opcua_nodes.about": (
        "Values of OPC UA nodes of a machine controller (subscriptions).",
        "Nilai node OPC UA dari pengendali mesin (langganan).",
    ),
    "template.sparkplug_b_edge_node": ("Sparkplug B edge node", "Edge node Sparkplug B"),
    "template.sparkplug_b_edge_node.about": (
        "Metrics of Sparkplug B edge nodes and their devices (live): the latest value per "
        "metric, marked stale while its node or device is offline.",
        "Metrik edge node Sparkplug B dan perangkatnya (langsung): nilai terbaru per metrik, "
        "ditandai basi selama node atau perangkatnya luring.",
    ),
    "template.press_modbus": ("Press line PLC (Modbus TCP)", "PLC lini press (Modbus TCP)"),
    "template.press_modbus.about": (
        "Force, stroke counter, die temperature and state of a press line's PLC, polled every "
        "second; one row per poll (ts, device, registers).",
        "Gaya, penghitung langkah, suhu cetakan dan status PLC lini press, dibaca setiap "
        "detik; satu baris per pembacaan (ts, device, registers).",
    ),
    "template.press_s7": ("Press line PLC (Siemens S7)", "PLC lini press (Siemens S7)"),
    "template.press_s7.about": (
        "Cycle counter, force, die temperature and state from data block DB10 of a press "
        "line's S7 CPU, polled every second; one row per poll.",
        "Penghitung siklus, gaya, suhu cetakan dan status dari blok data DB10 CPU S7 lini "
        "press, dibaca setiap detik; satu baris per pembacaan.",
    ),
    # -- notices after actions ---------------------------------------------------------
    "source.already_running": (
        "Source {id} is already syncing; try again when its run ends.",
        "Sumber {id} sedang disinkronkan; coba lagi setelah prosesnya selesai.",
    ),
    "error.not_found": ("Not found: {what}", "Tidak ditemukan: {what}"),
    "error.csrf_token": (
        "forbidden: the form's CSRF token is missing or wrong; reload the page and try again",
        "ditolak: token CSRF formulir tidak ada atau salah; muat ulang halaman lalu coba lagi",
    ),
    "error.forbidden_role": (
        "forbidden: needs role {needed}; this user has role {role}",
        "ditolak: perlu peran {needed}; pengguna ini berperan {role}",
    ),
    "error.login_first": (
        "Log in first: your session is missing or expired.",
        "Silakan masuk dulu: sesi Anda tidak ada atau sudah kedaluwarsa.",
    ),
    # -- validation problems, by pydantic error type or factorysync key ----------------
    "word.or": ("or", "atau"),
    "problem.missing": ("Field required", "wajib diisi"),
    "problem.string_type": ("Input should be a valid string", "harus berupa teks"),
    "problem.string_too_short": (
        "String should have at least {min_length} character(s)",
        "minimal {min_length} karakter",
    ),
    "problem.string_too_long": (
        "String should have at most {max_length} character(s)",
        "maksimal {max_length} karakter",
    ),
    "problem.string_pattern_mismatch": (
        "String should match pattern '{pattern}'",
        "harus cocok dengan pola {pattern}",
    ),
    "problem.int_parsing": ("Input should be a valid integer", "harus bilangan bulat"),
    "problem.int_type": ("Input should be a valid integer", "harus bilangan bulat"),
    "problem.int_from_float": ("Input should be a valid integer", "harus bilangan bulat"),
    "problem.float_parsing": ("Input should be a valid number", "harus berupa angka"),
    "problem.float_type": ("Input should be a valid number", "harus berupa angka"),
    "problem.bool_parsing": ("Input should be a valid boolean", "harus true atau false"),
    "problem.bool_type": ("Input should be a valid boolean", "harus true atau false"),
    "problem.literal_error": ("Input should be {expected}", "harus {expected}"),
    "problem.enum": ("Input should be {expected}", "harus {expected}"),
    "problem.greater_than": ("Input should be greater than {gt}", "harus lebih besar dari {gt}"),
    "problem.greater_than_equal": ("Input should be greater than or equal to {ge}", "minimal {ge}"),
    "problem.less_than": ("Input should be less than {lt}", "harus kurang dari {lt}"),
    "problem.less_than_equal": ("Input should be less than or equal to {le}", "maksimal {le}"),
    "problem.too_short": (
        "Should have at least {min_length} item(s)",
        "minimal {min_length} butir",
    ),
    "problem.too_long": ("Should have at most {max_length} item(s)", "maksimal {max_length} butir"),
    "problem.list_type": ("Input should be a valid list", "harus berupa daftar"),
    "problem.dict_type": ("Input should be a valid dictionary", "harus berupa objek (nama: nilai)"),
    "problem.model_type": ("Input should be an object", "harus berupa objek (nama: nilai)"),
    "problem.model_attributes_type": (
        "Input should be a valid dictionary or object",
        "harus berupa objek (nama: nilai)",
    ),
    "problem.extra_forbidden": ("Extra inputs are not permitted", "bukan pengaturan yang dikenal"),
    "problem.url_parsing": ("Input should be a valid URL", "bukan URL yang valid"),
    "problem.url_scheme": (
        "URL scheme should be {expected_schemes}",
        "harus URL dengan skema {expected_schemes}",
    ),
    "problem.json_invalid": ("Invalid JSON", "bukan JSON yang valid"),
    # factorysync's own validators' texts that have no key yet: the frame, their text quoted
    "problem.value_error": ("invalid: {error}", "tidak valid: {error}"),
    "problem.assertion_error": ("invalid: {error}", "tidak valid: {error}"),
    "problem.fs.bad_identifier": (
        "{what} {name} is not a valid name: use lower-case letters, digits and underscores, "
        "starting with a letter or underscore, at most 63 characters",
        "{what} {name} bukan nama yang valid: pakai huruf kecil, angka dan garis bawah, "
        "diawali huruf atau garis bawah, paling banyak 63 karakter",
    ),
    "problem.fs.bad_source_id": (
        "source_id {source_id} must be a slug: lower-case letters, digits, '_', '-', '.', "
        "starting with a letter or digit, at most 100 characters",
        "source_id {source_id} harus berupa slug: huruf kecil, angka, '_', '-', '.', diawali "
        "huruf atau angka, paling banyak 100 karakter",
    ),
    "problem.fs.bad_cron": (
        "schedule {schedule} is not a valid cron expression (five fields: minute hour "
        "day-of-month month day-of-week, e.g. '*/15 6-22 * * *')",
        "jadwal {schedule} bukan ekspresi cron yang valid (lima bagian: menit jam "
        "tanggal bulan hari-dalam-minggu, mis. '*/15 6-22 * * *')",
    ),
    "problem.fs.bad_site_name": (
        "{what} {name} is not a valid site name: use 1 to 32 lower-case letters, digits, "
        "'-' or '_'",
        "{what} {name} bukan nama lokasi yang valid: pakai 1 sampai 32 huruf kecil, angka, "
        "'-' atau '_'",
    ),
    "problem.fs.reserved_table": (
        "target_table {table} is reserved by factorysync",
        "target_table {table} dicadangkan oleh factorysync",
    ),
    "problem.fs.incremental_cursor": (
        "sync_strategy 'incremental' needs mapping_config.cursor_field",
        "sync_strategy 'incremental' memerlukan mapping_config.cursor_field",
    ),
    "problem.fs.config_too_deep": (
        "nested more than {levels} levels deep",
        "bersarang lebih dari {levels} tingkat",
    ),
    "problem.fs.config_too_large": (
        "too large: the connection, authentication and mapping configs of one source may "
        "take at most {kib} KiB as JSON together",
        "terlalu besar: konfigurasi koneksi, autentikasi dan pemetaan satu sumber paling "
        "banyak {kib} KiB sebagai JSON bersama-sama",
    ),
    "problem.source_exists": (
        "a source with this id exists already",
        "sumber dengan id ini sudah ada",
    ),
}
