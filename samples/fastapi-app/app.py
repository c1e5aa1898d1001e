"""A small FastAPI app: what rsconnect deploys with `rsconnect deploy fastapi`."""
import os

from fastapi import FastAPI, Request, WebSocket

app = FastAPI(title="Connect FastAPI sample")


@app.get("/")
def index(request: Request):
    return {
        "message": "Hello from FastAPI",
        "root_path": request.scope.get("root_path", ""),
        "content_guid": os.environ.get("CONNECT_CONTENT_GUID"),
    }


@app.get("/items/{item_id}")
def item(item_id: int, q: str = ""):
    return {"item_id": item_id, "q": q}


@app.websocket("/ws")
async def echo(websocket: WebSocket):
    await websocket.accept()
    while True:
        text = await websocket.receive_text()
        await websocket.send_text("echo: " + text)
