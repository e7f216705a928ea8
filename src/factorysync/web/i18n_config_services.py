"""Help texts of the connection settings of API, command and artisan sources in Bahasa
Indonesia: (English as the config model's Field description says it, Bahasa Indonesia)
pairs.

Merged by :mod:`factorysync.web.i18n_config`, which explains how they are used; a
description changed in the connector module leaves its pair unused, and the tests say so
(tests/web/test_i18n_config.py).
"""

from __future__ import annotations

SERVICE_HELP: tuple[tuple[str, str], ...] = (
    # api
    (
        "The whole URL to request, e.g. https://mes.plant.local/api/v1/production; or give "
        "base_url and endpoint instead. {{name}} placeholders are filled from "
        "authentication_config.",
        "URL lengkap yang diminta, mis. https://mes.plant.local/api/v1/production; atau isi "
        "base_url dan endpoint sebagai gantinya. Placeholder {{name}} diisi dari "
        "authentication_config.",
    ),
    (
        "How requests authenticate: an object whose type is none, bearer, basic, api_key or "
        "oauth2_client_credentials; secrets it leaves out come from authentication_config. Left "
        "out: authentication_config, when it has a type, is the block; else no authentication.",
        "Cara permintaan diautentikasi: objek dengan type none, bearer, basic, api_key atau "
        "oauth2_client_credentials; rahasia yang tidak dicantumkan diambil dari "
        "authentication_config. Jika dikosongkan: authentication_config menjadi bloknya bila "
        "memiliki type; jika tidak, tanpa autentikasi.",
    ),
    (
        "The API's root URL, e.g. https://mes.plant.local/api, with endpoint appended to it. "
        "Give url or base_url.",
        "URL dasar API, mis. https://mes.plant.local/api, yang disambung dengan endpoint. Isi "
        "url atau base_url.",
    ),
    (
        "Path under base_url, e.g. /v1/production (only with base_url).",
        "Path di bawah base_url, mis. /v1/production (hanya bersama base_url).",
    ),
    (
        "HTTP method of every request: GET, POST, PUT or PATCH.",
        "Metode HTTP setiap permintaan: GET, POST, PUT atau PATCH.",
    ),
    (
        "Request headers, e.g. {Accept: application/json}. Values may hold {{name}} "
        "placeholders (secrets from authentication_config) and {{cursor}}.",
        "Header permintaan, mis. {Accept: application/json}. Nilainya boleh memuat placeholder "
        "{{name}} (rahasia dari authentication_config) dan {{cursor}}.",
    ),
    (
        "Query parameters, e.g. {line: A, since: '{{cursor}}'}; a list repeats the parameter, "
        "null leaves it out. A value that uses {{cursor}} is left out while there is no cursor "
        "(the first run, and full syncs).",
        "Parameter query, mis. {line: A, since: '{{cursor}}'}; daftar mengulang parameternya, "
        "null menghilangkannya. Nilai yang memakai {{cursor}} dihilangkan selama belum ada "
        "kursor (proses pertama, dan sinkronisasi penuh).",
    ),
    (
        "JSON request body (for POST, PUT or PATCH); its texts may hold {{name}} placeholders "
        "and {{cursor}}.",
        "Body permintaan JSON (untuk POST, PUT atau PATCH); teks di dalamnya boleh memuat "
        "placeholder {{name}} dan {{cursor}}.",
    ),
    (
        "Dot path to the list of records in each response, e.g. data or result.items (default: "
        "the response is the list). A mapping's records_path wins over this one. Needed with "
        "pagination when responses are objects.",
        "Path bertitik ke daftar rekaman di setiap respons, mis. data atau result.items "
        "(bawaan: responsnya adalah daftar itu). records_path milik pemetaan lebih diutamakan "
        "daripada yang ini. Diperlukan bersama paginasi jika respons berupa objek.",
    ),
    (
        "How the following pages are requested: an object whose type is offset, page, cursor, "
        "next_url or link_header. Left out: one request per read.",
        "Cara halaman berikutnya diminta: objek dengan type offset, page, cursor, next_url atau "
        "link_header. Jika dikosongkan: satu permintaan per pembacaan.",
    ),
    (
        "How a date or time cursor is written into {{cursor}}: iso (ISO 8601 text), epoch "
        "(seconds since 1970) or epoch_ms (milliseconds since 1970).",
        "Cara kursor tanggal atau waktu ditulis ke {{cursor}}: iso (teks ISO 8601), epoch "
        "(detik sejak 1970) atau epoch_ms (milidetik sejak 1970).",
    ),
    (
        "Seconds to wait for the server: to connect, and for each part of the response.",
        "Detik menunggu server: untuk terhubung, dan untuk setiap bagian respons.",
    ),
    (
        "Largest response body taken, in bytes (default 50 MiB); a larger one fails the read.",
        "Ukuran body respons terbesar yang diterima, dalam byte (bawaan 50 MiB); yang lebih "
        "besar menggagalkan pembacaan.",
    ),
    (
        "Further tries of a request after a timeout, a connection error, or HTTP 408, 429 or "
        "5xx: each after the server's Retry-After, else after a growing back-off "
        "(FACTORYSYNC_RETRY_BACKOFF_S, doubling, with jitter). 0: no retry.",
        "Percobaan ulang sebuah permintaan setelah timeout, galat koneksi, atau HTTP 408, 429 "
        "atau 5xx: masing-masing setelah Retry-After dari server, atau setelah jeda yang makin "
        "panjang (FACTORYSYNC_RETRY_BACKOFF_S, berlipat dua, dengan jitter). 0: tanpa percobaan "
        "ulang.",
    ),
    (
        "Longest wait between two tries, in seconds: it caps the back-off, and a Retry-After "
        "longer than this fails the read at once (as transient).",
        "Jeda terlama antara dua percobaan, dalam detik: membatasi back-off, dan Retry-After "
        "yang lebih lama dari ini langsung menggagalkan pembacaan (sebagai gangguan sementara).",
    ),
    (
        "Redirects followed per request; a redirect to another scheme, host or port carries no "
        "credentials.",
        "Jumlah pengalihan (redirect) yang diikuti per permintaan; pengalihan ke skema, host "
        "atau port lain tidak membawa kredensial.",
    ),
    (
        "Most requests per minute, spaced evenly (60 / rate_limit seconds apart), shared by the "
        "reads of this process with the same rate_limit_key. Default: no limit.",
        "Jumlah permintaan maksimal per menit, diberi jarak merata (60 / rate_limit detik), "
        "dipakai bersama oleh pembacaan di proses ini dengan rate_limit_key yang sama. Bawaan: "
        "tanpa batas.",
    ),
    (
        "Name of the rate limit this source shares. Default: the URL's scheme://host:port, so "
        "every source of this process on one API server shares one limit.",
        "Nama batas laju yang dipakai bersama oleh sumber ini. Bawaan: scheme://host:port dari "
        "URL, sehingga semua sumber di proses ini pada satu server API berbagi satu batas.",
    ),
    (
        "TLS certificate check: true checks against the system's and certifi's CAs; the path of "
        "a PEM CA bundle (a file or folder) trusts a private CA; false checks nothing.",
        "Pemeriksaan sertifikat TLS: true memeriksa terhadap CA sistem dan CA certifi; path "
        "bundel CA PEM (berkas atau folder) mempercayai CA privat; false tidak memeriksa apa "
        "pun.",
    ),
    (
        "IANA time zone, e.g. Asia/Jakarta, of timestamps the API sends without a UTC offset, "
        "read so where a mapping field types them as datetime. Default: the time zone of the "
        "source's site, else UTC.",
        "Zona waktu IANA, mis. Asia/Jakarta, untuk stempel waktu yang dikirim API tanpa offset "
        "UTC, dibaca demikian bila bidang pemetaan memberinya tipe datetime. Bawaan: zona waktu "
        "situs sumber, atau UTC.",
    ),
    # artisan
    (
        "The program to run: a name on the standard PATH or an absolute path, e.g. "
        "/opt/mes/bin/export-shift; it must be on FACTORYSYNC_COMMAND_ALLOWLIST and runs "
        "without a shell. For artisan sources, the artisan command, e.g. report:daily.",
        "Program yang dijalankan: nama di PATH standar atau path absolut, mis. "
        "/opt/mes/bin/export-shift; harus ada di FACTORYSYNC_COMMAND_ALLOWLIST dan dijalankan "
        "tanpa shell. Untuk sumber artisan, perintah artisan-nya, mis. report:daily.",
    ),
    (
        "Arguments after the command. A list is passed as it is: [--line, A]. A mapping becomes "
        "options: {since: 2026-01-01} gives --since=2026-01-01, {force: true} gives --force, "
        "false or null leaves the option out, a list repeats it. Shell metacharacters are "
        "refused; no quoting is needed.",
        "Argumen setelah perintah. Daftar diteruskan apa adanya: [--line, A]. Mapping menjadi "
        "opsi: {since: 2026-01-01} menjadi --since=2026-01-01, {force: true} menjadi --force, "
        "false atau null menghilangkan opsinya, daftar mengulangnya. Metakarakter shell "
        "ditolak; tidak perlu tanda kutip.",
    ),
    (
        "Absolute path of the Laravel project, the folder holding the artisan script, e.g. "
        "/var/www/mes; the command runs there.",
        "Path absolut proyek Laravel, folder yang memuat skrip artisan, mis. /var/www/mes; "
        "perintah dijalankan di sana.",
    ),
    (
        "How standard output is read: json (one document), ndjson (one record per line), csv, "
        "or none for trigger-only jobs (nothing is read; success is the exit status 0).",
        "Cara keluaran standar dibaca: json (satu dokumen), ndjson (satu rekaman per baris), "
        "csv, atau none untuk tugas pemicu saja (tidak ada yang dibaca; berhasil jika status "
        "keluar 0).",
    ),
    (
        "Seconds the command may run; then its whole process group is killed and the run fails "
        "(as transient: it is tried again).",
        "Detik maksimal perintah boleh berjalan; setelah itu seluruh grup prosesnya dihentikan "
        "dan proses sinkronisasi gagal (sebagai gangguan sementara: dicoba lagi).",
    ),
    (
        "Text encoding of the output: a Python codec name, e.g. utf-8, cp1252, latin-1.",
        "Encoding teks keluaran: nama codec Python, mis. utf-8, cp1252, latin-1.",
    ),
    (
        "Dot path to the list of records in JSON output, e.g. data.rows; a mapping's "
        "records_path wins over this one.",
        "Path bertitik ke daftar rekaman di keluaran JSON, mis. data.rows; records_path milik "
        "pemetaan lebih diutamakan daripada yang ini.",
    ),
    (
        "How CSV output is parsed (output_format csv): delimiter, has_header, date_formats and "
        "the other keys of CSV files. Default: comma-separated, with a header row, types "
        "inferred.",
        "Cara keluaran CSV diurai (output_format csv): delimiter, has_header, date_formats dan "
        "kunci lain dari berkas CSV. Bawaan: dipisahkan koma, dengan baris header, tipe "
        "ditebak.",
    ),
    (
        "IANA time zone, e.g. Asia/Jakarta, of timestamps the command prints without a UTC "
        "offset; also the command's TZ, so that its local time is that zone. Default: "
        "csv.timezone, else the time zone of the source's site, else UTC.",
        "Zona waktu IANA, mis. Asia/Jakarta, untuk stempel waktu yang dicetak perintah tanpa "
        "offset UTC; juga TZ perintah, sehingga waktu lokalnya berada di zona itu. Bawaan: "
        "csv.timezone, atau zona waktu situs sumber, atau UTC.",
    ),
    (
        "Variables for the command: locale, time zone, APP_*, DB_* and the names on "
        "FACTORYSYNC_COMMAND_ENV_ALLOWLIST; never loader or interpreter hooks. The command "
        "starts from a minimal environment (PATH, LANG, TZ, HOME); secrets go in "
        "authentication_config.environment.",
        "Variabel untuk perintah: locale, zona waktu, APP_*, DB_* dan nama-nama di "
        "FACTORYSYNC_COMMAND_ENV_ALLOWLIST; tidak pernah hook loader atau interpreter. Perintah "
        "dimulai dari lingkungan minimal (PATH, LANG, TZ, HOME); rahasia dimasukkan di "
        "authentication_config.environment.",
    ),
    (
        "Most bytes of standard output taken (default 256 MiB); more stops the command and "
        "fails the run.",
        "Jumlah byte keluaran standar terbanyak yang diterima (bawaan 256 MiB); lebih dari itu "
        "menghentikan perintah dan menggagalkan proses.",
    ),
    (
        "The PHP executable that runs artisan: a name on the standard PATH or an absolute path, "
        "e.g. /usr/bin/php8.2; it must be on FACTORYSYNC_COMMAND_ALLOWLIST.",
        "Program PHP yang menjalankan artisan: nama di PATH standar atau path absolut, mis. "
        "/usr/bin/php8.2; harus ada di FACTORYSYNC_COMMAND_ALLOWLIST.",
    ),
    (
        "The artisan script, relative to working_directory (or absolute).",
        "Skrip artisan, relatif terhadap working_directory (atau absolut).",
    ),
    # command
    (
        "Absolute path of the folder the command runs in. Default: the service's own working "
        "directory.",
        "Path absolut folder tempat perintah dijalankan. Bawaan: direktori kerja layanan itu "
        "sendiri.",
    ),
)
