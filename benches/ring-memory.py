# RSS of a recording proxy after N exchanges with 60 KiB JSON bodies: the
# admin ring's byte budget at work.
#   python3 benches/ring-memory.py target/release/authfault 4000
import http.client, http.server, os, socket, socketserver, subprocess, sys, tempfile, threading, time
BODY = ('{"items":"' + 'x' * 60000 + '"}').encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(BODY))); self.end_headers(); self.wfile.write(BODY)
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
srv = S(("127.0.0.1", 0), H); threading.Thread(target=srv.serve_forever, daemon=True).start()
up = srv.server_address[1]
binary, n = sys.argv[1], int(sys.argv[2])
d = tempfile.mkdtemp()
with socketserver.TCPServer(("127.0.0.1", 0), None) as probe:  # a free port for the proxy
    port = probe.server_address[1]
p = subprocess.Popen([binary, "run", "--listen", f"127.0.0.1:{port}", "--admin", "off", "--ca-dir", d,
                      "--record", os.path.join(d, "r.jsonl")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(300):  # until the proxy listens (30 s at most)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the proxy did not start listening")
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    c.request("GET", f"http://127.0.0.1:{up}/{i}"); r = c.getresponse(); r.read(); assert r.status == 200
    if (i + 1) % (n // 4) == 0:
        rss = [l for l in open(f"/proc/{p.pid}/status") if l.startswith(("VmRSS", "VmHWM"))]
        print(i + 1, " ".join(x.split()[1] for x in rss), "kB (RSS, HWM)", flush=True)
p.terminate(); p.wait()
