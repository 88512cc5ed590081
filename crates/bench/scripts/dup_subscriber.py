# Subscriber: prints every message seq it receives, one per line.
import asyncio, json, sys, websockets
async def main(url):
    async with websockets.connect(url, ping_interval=None, max_queue=None) as ws:
        async for raw in ws:
            f = json.loads(raw)
            if f.get("type") == "message":
                print(f["seq"], flush=True)
asyncio.run(main(sys.argv[1]))
