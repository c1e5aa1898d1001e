"""A small Flask API: what rsconnect deploys with `rsconnect deploy api`."""
import os

from flask import Flask, jsonify, request, url_for

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(
        message="Hello from Flask",
        # Built from SCRIPT_NAME, so it includes /content/<guid> when served by Connect.
        self_url=url_for("index"),
        script_root=request.script_root,
    )


@app.get("/add")
def add():
    a = int(request.args.get("a", 0))
    b = int(request.args.get("b", 0))
    return jsonify(result=a + b)


@app.get("/env")
def env():
    return jsonify(
        content_guid=os.environ.get("CONNECT_CONTENT_GUID"),
        connect_server=os.environ.get("CONNECT_SERVER"),
        product=os.environ.get("POSIT_PRODUCT"),
        greeting=os.environ.get("GREETING"),
    )


@app.get("/headers")
def headers():
    return jsonify({k: v for k, v in request.headers.items()})
