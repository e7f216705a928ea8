"""Help texts of the connection settings of MQTT, OPC UA, Modbus, S7 and push sources
in Bahasa Indonesia: (English as the config model's Field description says it, Bahasa
Indonesia) pairs.

Merged by :mod:`factorysync.web.i18n_config`, which explains how they are used; a
description changed in the connector module leaves its pair unused, and the tests say so
(tests/web/test_i18n_config.py).
"""

from __future__ import annotations

DEVICE_HELP: tuple[tuple[str, str], ...] = (
    # mqtt
    (
        "Host name or IP address of the broker, e.g. broker.plant.local.",
        "Nama host atau alamat IP broker, mis. broker.plant.local.",
    ),
    (
        "TCP port of the broker. Default: 1883, or 8883 with tls.",
        "Port TCP broker. Bawaan: 1883, atau 8883 dengan tls.",
    ),
    (
        "Topic filters to subscribe, one or more: + stands for one level, a final # for the "
        "rest, e.g. plant/+/+/status or plant/#.",
        "Filter topic yang di-subscribe, satu atau lebih: + mewakili satu level, # di akhir "
        "mewakili sisanya, mis. plant/+/+/status atau plant/#.",
    ),
    (
        "Quality of service of the subscription: 0 (at most once), 1 (at least once) or 2 "
        "(exactly once). With 1 and 2 a message is acknowledged only once its rows are "
        "committed, so none is lost.",
        "Kualitas layanan langganan: 0 (paling banyak sekali), 1 (paling sedikit sekali) atau 2 "
        "(tepat sekali). Dengan 1 dan 2, pesan baru dikonfirmasi setelah barisnya tersimpan "
        "(commit), sehingga tidak ada yang hilang.",
    ),
    (
        "Lifts topic levels into record fields: plant/{line}/{machine_id}/status gives line and "
        "machine_id; + matches any level, a final # the rest. A message whose topic does not "
        "fit is quarantined; a field in the payload wins over one from the topic.",
        "Mengangkat level topic menjadi bidang rekaman: plant/{line}/{machine_id}/status "
        "menghasilkan line dan machine_id; + cocok dengan level apa pun, # di akhir dengan "
        "sisanya. Pesan yang topic-nya tidak cocok dikarantina; bidang di payload lebih "
        "diutamakan daripada bidang dari topic.",
    ),
    (
        "MQTT client id; the broker keeps the session under it, so it must stay the same and be "
        "unique on the broker. Default: factorysync-<source_id> (members of a shared_group add "
        "their worker name).",
        "Client id MQTT; broker menyimpan sesi di bawahnya, jadi harus tetap sama dan unik di "
        "broker. Bawaan: factorysync-<source_id> (anggota shared_group menambahkan nama "
        "worker-nya).",
    ),
    (
        "TLS to the broker: false, true (the broker's certificate checked against the system's "
        "CAs), or an object with ca_file, cert_file, key_file and insecure.",
        "TLS ke broker: false, true (sertifikat broker diperiksa terhadap CA sistem), atau "
        "objek dengan ca_file, cert_file, key_file dan insecure.",
    ),
    (
        "How payloads are read: auto (JSON when it parses, else text), json (anything else is "
        "quarantined) or text. A JSON object is one record, an array holds records, any other "
        "payload becomes a record with one field, value. sparkplug_b: Sparkplug B edge nodes "
        "(topics under spBv1.0/), one record per metric: group_id, edge_node_id, device_id, "
        "metric, value, datatype, ts, is_historical, stale.",
        "Cara payload dibaca: auto (JSON jika bisa diurai, selain itu teks), json (selain JSON "
        "dikarantina) atau text. Objek JSON menjadi satu rekaman, array memuat beberapa "
        "rekaman, payload lain menjadi rekaman dengan satu bidang, value. sparkplug_b: edge "
        "node Sparkplug B (topic di bawah spBv1.0/), satu rekaman per metrik: group_id, "
        "edge_node_id, device_id, metric, value, datatype, ts, is_historical, stale.",
    ),
    (
        "Sparkplug B: when aliases cannot be resolved or messages were lost (a sequence gap, a "
        "reconnect), ask the edge node to publish its births again (publishes NCMD Node "
        "Control/Rebirth to spBv1.0/<group_id>/NCMD/<edge_node_id>; the broker must let this "
        "client publish there). false: only recorded as an event.",
        "Sparkplug B: jika alias tidak dapat diselesaikan atau ada pesan yang hilang (celah "
        "urutan, sambung ulang), minta edge node menerbitkan birth-nya lagi (menerbitkan NCMD "
        "Node Control/Rebirth ke spBv1.0/<group_id>/NCMD/<edge_node_id>; broker harus "
        "mengizinkan client ini menerbitkan ke sana). false: hanya dicatat sebagai peristiwa.",
    ),
    (
        "MQTT protocol version: 5, or 3.1.1 for older brokers.",
        "Versi protokol MQTT: 5, atau 3.1.1 untuk broker lama.",
    ),
    (
        "Start a fresh session at every connect: the broker forgets the subscription and drops "
        "what it queued meanwhile. false: a persistent session, so QoS 1 and 2 messages wait at "
        "the broker while factorysync is down.",
        "Mulai sesi baru di setiap koneksi: broker melupakan langganan dan membuang pesan yang "
        "diantrekan selama itu. false: sesi persisten, sehingga pesan QoS 1 dan 2 menunggu di "
        "broker selama factorysync mati.",
    ),
    (
        "MQTT 5: seconds the broker keeps the session (subscription and queued messages) after "
        "a disconnect (default 7 days).",
        "MQTT 5: detik broker menyimpan sesi (langganan dan pesan dalam antrean) setelah "
        "koneksi terputus (bawaan 7 hari).",
    ),
    (
        "Keep-alive interval in seconds: the client pings an idle connection this often, and a "
        "broker that stays silent is taken as lost (then reconnected).",
        "Interval keep-alive dalam detik: client mengirim ping pada koneksi yang diam sesering "
        "ini, dan broker yang tetap diam dianggap hilang (lalu disambungkan ulang).",
    ),
    (
        "Also store each message's topic in this record field, e.g. topic. Default: not stored.",
        "Simpan juga topic setiap pesan di bidang rekaman ini, mis. topic. Bawaan: tidak disimpan.",
    ),
    (
        "Also store the time each message was received (ISO 8601, UTC) in this record field, "
        "e.g. received_at. Default: not stored.",
        "Simpan juga waktu setiap pesan diterima (ISO 8601, UTC) di bidang rekaman ini, mis. "
        "received_at. Bawaan: tidak disimpan.",
    ),
    (
        "Micro-batches: the waiting messages are written once this many wait (or after batch_ms).",
        "Micro-batch: pesan yang menunggu ditulis begitu sebanyak ini menunggu (atau setelah "
        "batch_ms).",
    ),
    (
        "Micro-batches: milliseconds the oldest waiting message may wait before the batch is "
        "written.",
        "Micro-batch: milidetik pesan tertua boleh menunggu sebelum batch ditulis.",
    ),
    (
        "MQTT 5 shared subscription group (letters, digits, _ . -; up to 64): every worker "
        "subscribes $share/<group>/<topic> and the broker hands each message to one of them, "
        "splitting a high-volume stream. Default: one subscriber.",
        "Grup langganan bersama MQTT 5 (huruf, angka, _ . -; hingga 64): setiap worker "
        "subscribe $share/<group>/<topic> dan broker memberikan setiap pesan ke salah satunya, "
        "membagi aliran bervolume tinggi. Bawaan: satu pelanggan.",
    ),
    # opcua
    (
        "Endpoint URL of the server: opc.tcp://host:port/path, e.g. opc.tcp://plc-line-a:4840.",
        "URL endpoint server: opc.tcp://host:port/path, mis. opc.tcp://plc-line-a:4840.",
    ),
    (
        "Nodes to monitor, one or more: {node_id, field} objects, or bare node ids "
        "(ns=2;i=1002), whose field is then named after the identifier.",
        "Node yang dipantau, satu atau lebih: objek {node_id, field}, atau node id saja "
        "(ns=2;i=1002), yang bidangnya lalu dinamai sesuai identifier-nya.",
    ),
    (
        "Message security: None, Sign or SignAndEncrypt. Sign and SignAndEncrypt need "
        "security_policy, certificate_file and private_key_file.",
        "Keamanan pesan: None, Sign atau SignAndEncrypt. Sign dan SignAndEncrypt memerlukan "
        "security_policy, certificate_file dan private_key_file.",
    ),
    (
        "Security policy, with a security_mode other than None: Basic256Sha256, "
        "Aes128Sha256RsaOaep or Aes256Sha256RsaPss; None without one.",
        "Kebijakan keamanan, dengan security_mode selain None: Basic256Sha256, "
        "Aes128Sha256RsaOaep atau Aes256Sha256RsaPss; None jika tanpa security_mode.",
    ),
    (
        "Path of factorysync's client certificate (DER or PEM), which the server must trust; "
        "needed with security.",
        "Path sertifikat client factorysync (DER atau PEM), yang harus dipercaya server; "
        "diperlukan bila memakai keamanan.",
    ),
    (
        "Path of the private key of certificate_file; needed with security.",
        "Path kunci privat dari certificate_file; diperlukan bila memakai keamanan.",
    ),
    (
        "Path of the server's certificate. Default: the certificate the server presents.",
        "Path sertifikat server. Bawaan: sertifikat yang diberikan server.",
    ),
    (
        "How often the server samples each node, in milliseconds; 0: as fast as the server can.",
        "Seberapa sering server mengambil sampel setiap node, dalam milidetik; 0: secepat yang "
        "server mampu.",
    ),
    (
        "How often the server sends the changes it collected, in milliseconds.",
        "Seberapa sering server mengirim perubahan yang dikumpulkannya, dalam milidetik.",
    ),
    (
        "Changes the server keeps per node between two publishes, so that fast changes are not "
        "lost.",
        "Jumlah perubahan yang disimpan server per node di antara dua publikasi, agar perubahan "
        "cepat tidak hilang.",
    ),
    (
        "Constant fields added to every record, e.g. {machine_id: M-101, line: A}.",
        "Bidang tetap yang ditambahkan ke setiap rekaman, mis. {machine_id: M-101, line: A}.",
    ),
    (
        "Seconds to wait for the server: to connect, and for each request.",
        "Detik menunggu server: untuk terhubung, dan untuk setiap permintaan.",
    ),
    (
        "Micro-batches: the waiting changes are written once this many wait (or after batch_ms).",
        "Micro-batch: perubahan yang menunggu ditulis begitu sebanyak ini menunggu (atau "
        "setelah batch_ms).",
    ),
    (
        "Micro-batches: milliseconds the oldest waiting change may wait before the batch is "
        "written.",
        "Micro-batch: milidetik perubahan tertua boleh menunggu sebelum batch ditulis.",
    ),
    (
        "After a reconnect, a restart or a handover to another worker, read the changes missed "
        "meanwhile from the server's history (HistoryRead, nodes whose access level allows it) "
        "before live values. Where the server keeps no history, or with false, the missed time "
        "range is recorded as a gap.",
        "Setelah sambung ulang, restart, atau peralihan ke worker lain, baca perubahan yang "
        "terlewat selama itu dari riwayat server (HistoryRead, untuk node yang access level-nya "
        "mengizinkan) sebelum nilai live. Jika server tidak menyimpan riwayat, atau dengan "
        "false, rentang waktu yang terlewat dicatat sebagai celah.",
    ),
    (
        "How far back, in hours, a history backfill reads at most; changes missed before that "
        "are recorded as a gap.",
        "Seberapa jauh ke belakang, dalam jam, isi ulang riwayat membaca paling banyak; "
        "perubahan yang terlewat sebelum itu dicatat sebagai celah.",
    ),
    # modbus
    ("Address (IP or DNS name) of the device.", "Alamat perangkat (IP atau nama DNS)."),
    ("TCP port of the device.", "Port TCP perangkat."),
    (
        "Modbus unit (slave) id; behind a gateway, the serial device's address.",
        "ID unit (slave) Modbus; di belakang gateway, alamat perangkat serialnya.",
    ),
    ("The values to read, one column each.", "Nilai yang dibaca, masing-masing satu kolom."),
    (
        "Poll period in milliseconds, on a fixed schedule: one row per poll.",
        "Periode polling dalam milidetik, dengan jadwal tetap: satu baris per polling.",
    ),
    (
        "Seconds to wait for the connection and for each answer.",
        "Detik menunggu koneksi dan setiap jawaban.",
    ),
    (
        "Name stamped on every row in the 'device' column (default: host:port/unit_id, e.g. "
        "10.20.1.15:502/1).",
        "Nama yang dicantumkan di setiap baris pada kolom 'device' (bawaan: host:port/unit_id, "
        "mis. 10.20.1.15:502/1).",
    ),
    (
        "Rows written per transaction at most (micro-batch size).",
        "Jumlah baris maksimal yang ditulis per transaksi (ukuran micro-batch).",
    ),
    (
        "How long the first row of a micro-batch may wait for others (ms).",
        "Berapa lama baris pertama sebuah micro-batch boleh menunggu baris lain (ms).",
    ),
    (
        "Unconfigured addresses one request may span to join two ranges of the same kind; 0 for "
        "devices that refuse reads across addresses they lack.",
        "Jumlah alamat yang tidak dikonfigurasi yang boleh dilewati satu permintaan untuk "
        "menggabungkan dua rentang sejenis; 0 untuk perangkat yang menolak pembacaan melintasi "
        "alamat yang tidak dimilikinya.",
    ),
    (
        "Registers one request may read (the protocol allows 125; some devices fewer).",
        "Jumlah register yang boleh dibaca satu permintaan (protokol mengizinkan 125; sebagian "
        "perangkat lebih sedikit).",
    ),
    (
        "Coils or discrete inputs one request may read (the protocol allows 2000).",
        "Jumlah coil atau discrete input yang boleh dibaca satu permintaan (protokol "
        "mengizinkan 2000).",
    ),
    # s7
    ("Rack of the CPU.", "Rack CPU."),
    (
        "Slot of the CPU: 2 on an S7-300, 1 on an S7-1200/1500 (also 0 on some).",
        "Slot CPU: 2 pada S7-300, 1 pada S7-1200/1500 (pada sebagian juga 0).",
    ),
    (
        "Seconds to wait for each answer (connecting waits up to the driver's own 5 s).",
        "Detik menunggu setiap jawaban (koneksi menunggu hingga 5 detik milik driver sendiri).",
    ),
    (
        "Name stamped on every row in the 'device' column (default: host:port/rack/slot, e.g. "
        "10.20.1.20:102/0/1).",
        "Nama yang dicantumkan di setiap baris pada kolom 'device' (bawaan: "
        "host:port/rack/slot, mis. 10.20.1.20:102/0/1).",
    ),
    ("TCP port (ISO-on-TCP).", "Port TCP (ISO-on-TCP)."),
    (
        "Bytes between two tags of one area (or data block) that one read may span to read both "
        "at once.",
        "Jumlah byte di antara dua tag dalam satu area (atau data block) yang boleh dilewati "
        "satu pembacaan agar keduanya terbaca sekaligus.",
    ),
    # push
    (
        "Most records one POST /api/ingest request may carry; a larger request is refused with "
        "HTTP 413.",
        "Jumlah rekaman maksimal yang boleh dibawa satu permintaan POST /api/ingest; permintaan "
        "yang lebih besar ditolak dengan HTTP 413.",
    ),
    (
        "Micro-batches: most rows written in one transaction (requests arriving together share "
        "one).",
        "Micro-batch: jumlah baris maksimal yang ditulis dalam satu transaksi (permintaan yang "
        "datang bersamaan berbagi satu transaksi).",
    ),
    (
        "Micro-batches: milliseconds the first record of a batch may wait for others before it "
        "is written; 0 writes at once.",
        "Micro-batch: milidetik rekaman pertama sebuah batch boleh menunggu rekaman lain "
        "sebelum ditulis; 0 langsung menulis.",
    ),
    (
        "IANA time zone, e.g. Asia/Jakarta, of timestamps the messages carry without a UTC "
        "offset, read so where a mapping field types them as datetime. Default: the time zone "
        "of the source's site, else UTC.",
        "Zona waktu IANA, mis. Asia/Jakarta, untuk stempel waktu yang dibawa pesan tanpa "
        "offset UTC, dibaca demikian bila bidang pemetaan memberinya tipe datetime. Bawaan: "
        "zona waktu situs sumber, atau UTC.",
    ),
    (
        "IANA time zone, e.g. Asia/Jakarta, of timestamps the pushed records carry without a "
        "UTC offset, read so where a mapping field types them as datetime. Default: the time "
        "zone of the source's site, else UTC.",
        "Zona waktu IANA, mis. Asia/Jakarta, untuk stempel waktu yang dibawa rekaman kiriman "
        "tanpa offset UTC, dibaca demikian bila bidang pemetaan memberinya tipe datetime. "
        "Bawaan: zona waktu situs sumber, atau UTC.",
    ),
)
