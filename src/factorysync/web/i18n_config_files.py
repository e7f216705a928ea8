"""Help texts of the connection settings of file and database sources in Bahasa
Indonesia: (English as the config model's Field description says it, Bahasa Indonesia)
pairs.

Merged by :mod:`factorysync.web.i18n_config`, which explains how they are used; a
description changed in the connector module leaves its pair unused, and the tests say so
(tests/web/test_i18n_config.py).
"""

from __future__ import annotations

FILE_HELP: tuple[tuple[str, str], ...] = (
    # file
    (
        "The file to read: a path or a glob (imports/*.csv; ** for every sub-folder), inside a "
        "data root (FACTORYSYNC_DATA_ROOTS). A relative path is looked up under each root in "
        "turn. A glob reads every matching file, and a full sync treats them together as the "
        "snapshot.",
        "Berkas yang dibaca: sebuah path atau glob (imports/*.csv; ** untuk setiap subfolder), "
        "di dalam data root (FACTORYSYNC_DATA_ROOTS). Path relatif dicari di setiap root secara "
        "bergantian. Glob membaca semua berkas yang cocok, dan sinkronisasi penuh memperlakukan "
        "semuanya bersama sebagai satu snapshot.",
    ),
    (
        "Text encoding of the data: any Python codec name, e.g. utf-8, utf-8-sig, latin-1, "
        "cp1252. A UTF-8 byte order mark is skipped. Not used for Excel workbooks.",
        "Encoding teks data: nama codec Python apa pun, mis. utf-8, utf-8-sig, latin-1, cp1252. "
        "Byte order mark UTF-8 dilewati. Tidak dipakai untuk workbook Excel.",
    ),
    (
        "JSON: dot path to the list of records in the document, e.g. data or result.items "
        "(default: the document itself is the list, or the one record). Excel: the sheet to "
        "read, instead of sheet. A mapping's records_path wins over this one. Not used for CSV "
        "and NDJSON.",
        "JSON: path bertitik ke daftar rekaman di dalam dokumen, mis. data atau result.items "
        "(bawaan: dokumen itu sendiri adalah daftarnya, atau satu rekaman). Excel: lembar yang "
        "dibaca, sebagai ganti sheet. records_path milik pemetaan lebih diutamakan daripada "
        "yang ini. Tidak dipakai untuk CSV dan NDJSON.",
    ),
    (
        "IANA time zone, e.g. Asia/Jakarta, in which timestamps without a UTC offset are read: "
        "CSV dates (date_formats, column_types), Excel dates, and JSON text a mapping types as "
        "datetime. Default: the time zone of the source's site, else UTC. The plant zone "
        "(FACTORYSYNC_TIMEZONE) is for display only and does not apply here.",
        "Zona waktu IANA, mis. Asia/Jakarta, untuk membaca stempel waktu tanpa offset UTC: "
        "tanggal CSV (date_formats, column_types), tanggal Excel, dan teks JSON yang diberi "
        "tipe datetime oleh pemetaan. Bawaan: zona waktu situs sumber, atau UTC. Zona pabrik "
        "(FACTORYSYNC_TIMEZONE) hanya untuk tampilan dan tidak berlaku di sini.",
    ),
    (
        "Format of the file: json (an array, an object holding the records, or one object), "
        "ndjson (one JSON record per line), csv or excel. Left out: from the extension of "
        "file_path (.json; .ndjson, .jsonl; .csv; .xlsx, .xlsm, .xlsb, .xls, .ods), json when "
        "the extension is none of these.",
        "Format berkas: json (array, objek yang memuat rekaman, atau satu objek), ndjson (satu "
        "rekaman JSON per baris), csv atau excel. Jika dikosongkan: ditentukan dari ekstensi "
        "file_path (.json; .ndjson, .jsonl; .csv; .xlsx, .xlsm, .xlsb, .xls, .ods), json jika "
        "ekstensinya bukan salah satu dari itu.",
    ),
    (
        "Also sync soon after the file changes, besides the schedule: factorysync run watches "
        "its folder (files replaced by rename are seen too), and a burst of writes makes one "
        "sync (FACTORYSYNC_FILE_WATCH_DEBOUNCE_MS).",
        "Sinkronkan juga segera setelah berkas berubah, selain sesuai jadwal: factorysync run "
        "mengawasi foldernya (berkas yang diganti lewat rename juga terdeteksi), dan "
        "serangkaian penulisan beruntun menghasilkan satu sinkronisasi "
        "(FACTORYSYNC_FILE_WATCH_DEBOUNCE_MS).",
    ),
    (
        "The front end's fileName, kept from an imported default_source_data list "
        "(import-legacy) and served again by /api/legacy/source_data. Not used to read the "
        "file.",
        "fileName dari front end, disimpan dari daftar default_source_data yang diimpor "
        "(import-legacy) dan disajikan lagi oleh /api/legacy/source_data. Tidak dipakai untuk "
        "membaca berkas.",
    ),
    (
        "The front end's filePath, kept from an imported default_source_data list "
        "(import-legacy) and served again by /api/legacy/source_data. Not used to read the "
        "file: file_path is.",
        "filePath dari front end, disimpan dari daftar default_source_data yang diimpor "
        "(import-legacy) dan disajikan lagi oleh /api/legacy/source_data. Tidak dipakai untuk "
        "membaca berkas: yang dipakai adalah file_path.",
    ),
    (
        "Format of the file: csv (comma-separated text).",
        "Format berkas: csv (teks yang dipisahkan koma).",
    ),
    (
        "Field separator, one character, e.g. ; (common in exports that write decimal commas); "
        "tab (or \\t) for tab-separated text.",
        "Pemisah bidang, satu karakter, mis. ; (umum pada ekspor yang menulis koma desimal); "
        "tab (atau \\t) untuk teks yang dipisahkan tab.",
    ),
    (
        "Character around fields that hold the delimiter or line breaks (a quote inside is "
        "doubled); null: fields are never quoted.",
        "Karakter yang mengapit bidang berisi pemisah atau pergantian baris (tanda kutip di "
        "dalamnya ditulis dua kali); null: bidang tidak pernah dikutip.",
    ),
    (
        "Character that makes the next one literal inside a field, e.g. a backslash; default: "
        "none.",
        "Karakter yang membuat karakter berikutnya dibaca apa adanya di dalam bidang, mis. "
        "garis miring terbalik; bawaan: tidak ada.",
    ),
    (
        "Whether the first line (after skip_rows) names the columns. false: every line is data, "
        "and the columns are column_1, column_2, … unless column_names names them.",
        "Apakah baris pertama (setelah skip_rows) berisi nama kolom. false: setiap baris adalah "
        "data, dan kolomnya bernama column_1, column_2, … kecuali diberi nama lewat "
        "column_names.",
    ),
    (
        "Names for the columns, in order: instead of the header row's names, or for a file "
        "without a header.",
        "Nama kolom, berurutan: sebagai ganti nama dari baris header, atau untuk berkas tanpa "
        "header.",
    ),
    (
        "Lines to skip before the header (or before the first data row without one), e.g. 1 for "
        "a report title above the header.",
        "Jumlah baris yang dilewati sebelum header (atau sebelum baris data pertama jika tanpa "
        "header), mis. 1 untuk judul laporan di atas header.",
    ),
    (
        "Decimal mark of numbers: . or , (for 1.234,5 set decimal , and thousands .).",
        "Tanda desimal angka: . atau , (untuk 1.234,5 atur decimal , dan thousands .).",
    ),
    (
        "Thousands separator, removed before numbers are read: . , space ' or _; default: none. "
        "It must differ from decimal.",
        "Pemisah ribuan, dibuang sebelum angka dibaca: . , spasi ' atau _; bawaan: tidak ada. "
        "Harus berbeda dari decimal.",
    ),
    (
        "strptime formats tried in order for dates and timestamps, e.g. %d.%m.%Y %H:%M or "
        "%d/%m/%Y (a format without a time gives dates). Empty: columns typed date or datetime "
        "in column_types take ISO 8601 text, and other columns stay text (a mapping can still "
        "type them).",
        "Format strptime yang dicoba berurutan untuk tanggal dan stempel waktu, mis. %d.%m.%Y "
        "%H:%M atau %d/%m/%Y (format tanpa jam menghasilkan tanggal). Kosong: kolom bertipe "
        "date atau datetime di column_types menerima teks ISO 8601, dan kolom lain tetap teks "
        "(pemetaan masih dapat memberinya tipe).",
    ),
    (
        "Cell texts read as empty (null). The list replaces the default, which is the empty "
        "text, NULL, null, NA, N/A and #N/A.",
        "Teks sel yang dibaca sebagai kosong (null). Daftar ini menggantikan bawaan, yaitu teks "
        "kosong, NULL, null, NA, N/A dan #N/A.",
    ),
    (
        "Fixed types for named columns: string, integer, float, boolean, date or datetime, e.g. "
        "{order_no: string, qty: integer}. A value that does not fit fails the read, naming the "
        "file, row and column.",
        "Tipe tetap untuk kolom tertentu: string, integer, float, boolean, date atau datetime, "
        "mis. {order_no: string, qty: integer}. Nilai yang tidak sesuai menggagalkan pembacaan, "
        "dengan menyebut berkas, baris, dan kolomnya.",
    ),
    (
        "Type the columns not in column_types by their values: integer, float, boolean "
        "(true/false), a date in date_formats, else text. Numbers with leading zeros, codes "
        "such as 007, stay text. false: those columns stay text.",
        "Beri tipe pada kolom yang tidak ada di column_types berdasarkan nilainya: integer, "
        "float, boolean (true/false), tanggal sesuai date_formats, selain itu teks. Angka "
        "dengan nol di depan, kode seperti 007, tetap teks. false: kolom-kolom itu tetap teks.",
    ),
    (
        "Rows with more or fewer fields than the header: report skips them (each is quarantined "
        "with its line number, and a warning is logged); fail fails the read.",
        "Baris dengan bidang lebih banyak atau lebih sedikit dari header: report melewatinya "
        "(masing-masing dikarantina dengan nomor barisnya, dan peringatan dicatat di log); fail "
        "menggagalkan pembacaan.",
    ),
    (
        "Sheet to read: its name (Produksi) or its position, 0 for the first. A mapping's "
        "records_path, when set, names the sheet instead, so that each mapping of a source can "
        "read its own sheet of one workbook.",
        "Lembar yang dibaca: namanya (Produksi) atau posisinya, 0 untuk yang pertama. Jika "
        "diisi, records_path milik pemetaan yang menentukan lembarnya, sehingga setiap pemetaan "
        "sebuah sumber dapat membaca lembarnya sendiri dari satu workbook.",
    ),
    (
        "Format of the file: excel (.xlsx, .xlsm, .xlsb, .xls or .ods).",
        "Format berkas: excel (.xlsx, .xlsm, .xlsb, .xls atau .ods).",
    ),
    (
        "Whether the table has a header row (header_row, else the first non-empty row of "
        "cell_range). false: every row is data, and the columns are column_A, column_B, … "
        "unless column_names names them.",
        "Apakah tabel memiliki baris header (header_row, atau baris tidak kosong pertama di "
        "cell_range). false: setiap baris adalah data, dan kolomnya bernama column_A, column_B, "
        "… kecuali diberi nama lewat column_names.",
    ),
    (
        "Row number of the header as Excel shows it (1 = the first row); rows above it are "
        "skipped. Default: the first non-empty row of cell_range.",
        "Nomor baris header seperti yang ditampilkan Excel (1 = baris pertama); baris di "
        "atasnya dilewati. Bawaan: baris tidak kosong pertama di cell_range.",
    ),
    (
        "The part of the sheet to read: A1:F200, B3:H (from row 3 to the last) or A:F (whole "
        "columns). Default: the whole sheet.",
        "Bagian lembar yang dibaca: A1:F200, B3:H (dari baris 3 sampai terakhir) atau A:F "
        "(kolom utuh). Bawaan: seluruh lembar.",
    ),
    (
        "Names for the columns, in order: instead of the header row's names, or of the column "
        "letters without a header.",
        "Nama kolom, berurutan: sebagai ganti nama dari baris header, atau huruf kolom jika "
        "tanpa header.",
    ),
    # database
    (
        "The database server: postgresql, mysql, mariadb, mssql (SQL Server) or sqlite.",
        "Jenis server basis data: postgresql, mysql, mariadb, mssql (SQL Server) atau sqlite.",
    ),
    (
        "Host name or IP address of the server, e.g. mes-db.plant.local; required except for "
        "sqlite.",
        "Nama host atau alamat IP server, mis. mes-db.plant.local; wajib kecuali untuk sqlite.",
    ),
    (
        "TCP port of the server. Default: the dialect's (5432 PostgreSQL, 3306 MySQL and "
        "MariaDB, 1433 SQL Server).",
        "Port TCP server. Bawaan: port dialeknya (5432 PostgreSQL, 3306 MySQL dan MariaDB, 1433 "
        "SQL Server).",
    ),
    (
        "Name of the database; for sqlite, the path of the database file, inside a data root "
        "(opened read-only).",
        "Nama basis data; untuk sqlite, path berkas basis data di dalam data root (dibuka "
        "hanya-baca).",
    ),
    (
        "Table or view to read, a plain SQL name (quoted by factorysync). Give exactly one of "
        "table or query.",
        "Tabel atau view yang dibaca, nama SQL biasa (diberi kutip oleh factorysync). Isi tepat "
        "salah satu: table atau query.",
    ),
    (
        "The Python driver: psycopg for postgresql; pymysql (extra mysql) or mysqldb (extra "
        "mysqlclient) for mysql and mariadb; pymssql (extra mssql) for mssql; pysqlite for "
        "sqlite. Default: the first one named for the dialect.",
        "Driver Python: psycopg untuk postgresql; pymysql (extra mysql) atau mysqldb (extra "
        "mysqlclient) untuk mysql dan mariadb; pymssql (extra mssql) untuk mssql; pysqlite "
        "untuk sqlite. Bawaan: yang pertama disebut untuk dialek tersebut.",
    ),
    (
        "Schema that holds table, e.g. public or dbo. Default: the connection's default schema.",
        "Skema yang memuat table, mis. public atau dbo. Bawaan: skema bawaan koneksi.",
    ),
    (
        "One SELECT (or WITH … SELECT) statement to read instead of table, without bind "
        "parameters or ;. An incremental sync wraps it with the cursor filter.",
        "Satu pernyataan SELECT (atau WITH … SELECT) yang dibaca sebagai ganti table, tanpa "
        "bind parameter atau ;. Sinkronisasi inkremental membungkusnya dengan filter kursor.",
    ),
    (
        "Columns of table to read. Default: all of them. With query, list the columns in the "
        "query instead.",
        "Kolom table yang dibaca. Bawaan: semuanya. Dengan query, tuliskan kolomnya di dalam "
        "query.",
    ),
    (
        "Connections kept open to the server, shared by every source of this process with the "
        "same connection settings and user. A read that finds them all busy waits up to "
        "connect_timeout.",
        "Koneksi yang dibiarkan terbuka ke server, dipakai bersama oleh semua sumber di proses "
        "ini dengan pengaturan koneksi dan pengguna yang sama. Pembacaan yang mendapati "
        "semuanya sibuk menunggu hingga connect_timeout.",
    ),
    (
        "Seconds to wait for a connection: to the server, or for a free one in the pool.",
        "Detik menunggu koneksi: ke server, atau menunggu koneksi yang bebas di pool.",
    ),
    (
        "Seconds a query may run (PostgreSQL statement_timeout; MySQL and MariaDB read timeout; "
        "SQL Server query timeout). Default: no limit. Not applied to sqlite.",
        "Detik maksimal sebuah query boleh berjalan (statement_timeout PostgreSQL; read timeout "
        "MySQL dan MariaDB; query timeout SQL Server). Bawaan: tanpa batas. Tidak berlaku untuk "
        "sqlite.",
    ),
    (
        "IANA time zone, e.g. Asia/Jakarta, of timestamps stored without one (DATETIME, "
        "timestamp without time zone, datetime2). Default: the time zone of the source's site, "
        "else UTC. Set it to the server's zone for MySQL and MariaDB TIMESTAMP columns.",
        "Zona waktu IANA, mis. Asia/Jakarta, untuk stempel waktu yang disimpan tanpa zona "
        "(DATETIME, timestamp without time zone, datetime2). Bawaan: zona waktu situs sumber, "
        "atau UTC. Atur ke zona server untuk kolom TIMESTAMP MySQL dan MariaDB.",
    ),
)
