# Duplicates after a server crash (SIGKILL) and after a silent client (SIGSTOP,
# then killed), with the all-in-one at 200 msg/s. Needs `pip install websockets`.
# Usage: python3 duplicates.py target/release/tidings crash|silent
import json, os, signal, subprocess, sys, tempfile, time, urllib.request, threading
BIN = sys.argv[1]; MODE = sys.argv[2]; RATE = 200
d = tempfile.mkdtemp()
env = dict(os.environ, DATABASE_URL=f"sqlite://{d}/t.db", JWT_SECRET="x"*40, TIDINGS_ADMIN_PASSWORD="adminpass1",
           TIDINGS_API_ADDR="127.0.0.1:18000", TIDINGS_WS_ADDR="127.0.0.1:15000", RUST_LOG="warn",
           TIDINGS_IDLE_TIMEOUT="3s", TIDINGS_PING_INTERVAL="1s")
def start():
    p = subprocess.Popen([BIN], env=env, stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen("http://127.0.0.1:18000/readyz"); return p
        except Exception: time.sleep(0.05)
    raise SystemExit("not ready")
def rest(method, path, token=None, body=None):
    req = urllib.request.Request("http://127.0.0.1:18000"+path, method=method,
        data=json.dumps(body).encode() if body is not None else None, headers={"content-type":"application/json"})
    if token: req.add_header("authorization", "Bearer "+token)
    with urllib.request.urlopen(req) as r:
        t = r.read(); return json.loads(t) if t else None
server = start()
admin = rest("POST","/api/token/",body={"username":"admin","password":"adminpass1"})["access"]
for u in ["alice","bob"]:
    rest("POST","/api/users/",admin,{"username":u,"password":u+"-password"})
alice = rest("POST","/api/token/",body={"username":"alice","password":"alice-password"})["access"]
bob = rest("POST","/api/token/",body={"username":"bob","password":"bob-password"})["access"]
rest("POST","/api/topics/",alice,{"name":"news"})
rest("POST","/api/topics/news/members/",bob,{"username":"bob"})
url = f"ws://127.0.0.1:15000/ws?token={bob}"
def subscriber():
    return subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "dup_subscriber.py"), url], stdout=subprocess.PIPE, text=True)
stop = threading.Event()
def publish():
    n = 0
    while not stop.is_set():
        try: rest("POST","/api/topics/news/messages/",alice,{"content":f"m{n}"}); n += 1
        except Exception: time.sleep(0.05)
        time.sleep(1/RATE)
first = subscriber(); time.sleep(0.5)
t = threading.Thread(target=publish); t.start()
time.sleep(3)
if MODE == "crash":
    server.kill(); server.wait(); first.wait(timeout=10)
    stop.set(); t.join()
    seen = [int(l) for l in first.stdout.read().split()]
    server = start()
else:
    first.send_signal(signal.SIGSTOP); time.sleep(5); stop.set(); t.join()
    first.kill(); first.wait()
    seen = [int(l) for l in first.stdout.read().split()]
    time.sleep(4)  # the server's idle timeout drops the silent socket
second = subscriber(); time.sleep(2); second.kill()
again = [int(l) for l in second.stdout.read().split()]
server.kill()
last_seen = max(seen) if seen else 0
dups = [s for s in again if s <= last_seen]
stored = max(again + seen)
missing = sorted(set(range(1, stored+1)) - set(seen) - set(again))
print(json.dumps({"mode":MODE,"rate":RATE,"received_before":len(seen),"received_after":len(again),"duplicates":len(dups),"missing":len(missing)}))
