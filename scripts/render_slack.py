"""Render Slack ``chat.postMessage`` bodies (Block Kit) as a standalone HTML page that looks like a thread.

For the README's screenshot of what the owner's channel shows (not part of CI). The input is the list of
bodies the agent posted, as recorded by a local stand-in for Slack's Web API (``scripts/screenshot.py``
captures them from a real WT-02 run): ``{"channel", "text", "blocks", "thread_ts"?}``. The first message
of a channel without ``thread_ts`` opens the thread; the ones that carry its ``ts`` are its replies.

    python scripts/render_slack.py posts.json out.html [--channel '#analytics']

Only the block types ``dagster_agent_de.adapters.notify.channels.slack_blocks`` builds are drawn:
``section`` (text and fields), ``actions`` (link buttons) and ``context``.
"""

from __future__ import annotations

import argparse
import html
import json
import re
from pathlib import Path
from typing import Any

# drawn as coloured dots: a headless browser often has no emoji font
_EMOJI = {code: f'<span class="sev" style="background:{color}"></span>' for code, color in {
    ":red_circle:": "#e01e5a", ":warning:": "#ecb22e", ":information_source:": "#1264a3",
    ":rotating_light:": "#a5001e"}.items()}

_CSS = """
body { margin: 0; font: 15px/1.46 -apple-system, 'Segoe UI', 'Noto Sans', 'DejaVu Sans', sans-serif; color: #1d1c1d;
       background: #fff; }
.top { display: flex; align-items: center; gap: 10px; padding: 12px 20px; border-bottom: 1px solid #ddd;
       font-weight: 700; font-size: 18px; }
.top small { font-weight: 400; color: #616061; font-size: 13px; }
.thread { padding: 4px 0 24px; }
.msg { display: flex; gap: 10px; padding: 8px 20px; }
.msg.reply { padding-left: 20px; }
.avatar { width: 36px; height: 36px; border-radius: 6px; background: #4f43dd; color: #fff; font-weight: 700;
          display: flex; align-items: center; justify-content: center; flex: none; font-size: 14px; }
.who { font-weight: 900; } .who .app { font-weight: 600; font-size: 10px; background: #e8e8e8; color: #616061;
       padding: 1px 4px; border-radius: 3px; margin-left: 4px; vertical-align: 2px; }
.who .time { font-weight: 400; color: #616061; font-size: 12px; margin-left: 6px; }
.body { min-width: 0; flex: 1; max-width: 980px; }
.section { margin: 4px 0; white-space: pre-wrap; word-wrap: break-word; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 6px 24px; margin: 6px 0; }
.fields div { white-space: pre-wrap; }
pre { background: #f8f8f8; border: 1px solid #ddd; border-radius: 4px; padding: 8px; margin: 4px 0;
      font: 12px/1.5 Monaco, Menlo, 'DejaVu Sans Mono', monospace; white-space: pre-wrap; }
code { font: 12px Monaco, Menlo, 'DejaVu Sans Mono', monospace; color: #c01343; background: #f4f4f4;
       border: 1px solid #ddd; border-radius: 3px; padding: 0 3px; }
.actions { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0 4px; }
.button { border: 1px solid #bbb; border-radius: 4px; padding: 3px 12px; font-weight: 700; font-size: 13px;
          color: #1d1c1d; text-decoration: none; }
.context { color: #616061; font-size: 12px; margin-top: 4px; }
.divider { display: flex; align-items: center; gap: 12px; color: #616061; font-size: 13px; padding: 6px 20px; }
.divider::after { content: ""; flex: 1; border-top: 1px solid #ddd; }
a { color: #1264a3; }
.sev { display: inline-block; width: 12px; height: 12px; border-radius: 50%; margin-right: 4px; vertical-align: -1px; }
"""


def mrkdwn(text: str) -> str:
    """Slack's mrkdwn as HTML: code blocks, inline code, ``<url|label>`` links, *bold*, _italic_, emoji."""
    parts = re.split(r"```(.*?)```", text, flags=re.S)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<pre>{html.escape(part.strip(chr(10)))}</pre>")
            continue
        inline = re.split(r"`([^`\n]+)`", part)
        for j, chunk in enumerate(inline):
            if j % 2:
                out.append(f"<code>{html.escape(chunk)}</code>")
                continue
            s = html.escape(chunk, quote=False)
            s = re.sub(r"&lt;(https?://[^|&\s]+)\|([^&]+?)&gt;", r'<a href="\1">\2</a>', s)
            s = re.sub(r"&lt;(https?://[^|&\s]+)&gt;", r'<a href="\1">\1</a>', s)
            s = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"<b>\1</b>", s)
            s = re.sub(r"(?<![\w])_([^_\n]+)_(?![\w])", r"<i>\1</i>", s)
            for code, char in _EMOJI.items():
                s = s.replace(code, char)
            out.append(s)
    return "".join(out)


def _text(obj: dict[str, Any]) -> str:
    return mrkdwn(obj["text"]) if obj.get("type") == "mrkdwn" else html.escape(obj.get("text", ""))


def render_blocks(blocks: list[dict[str, Any]]) -> str:
    """The blocks of one message as HTML."""
    out = []
    for block in blocks:
        kind = block.get("type")
        if kind == "section":
            if "text" in block:
                out.append(f'<div class="section">{_text(block["text"])}</div>')
            if block.get("fields"):
                out.append('<div class="fields">' + "".join(f"<div>{_text(f)}</div>" for f in block["fields"]) + "</div>")
        elif kind == "actions":
            out.append('<div class="actions">' + "".join(
                f'<a class="button" href="{html.escape(e.get("url", "#"))}">{html.escape(e["text"]["text"])}</a>'
                for e in block.get("elements", []) if e.get("type") == "button") + "</div>")
        elif kind == "context":
            out.append('<div class="context">' + " ".join(_text(e) for e in block.get("elements", [])) + "</div>")
        elif kind == "divider":
            out.append("<hr>")
    return "".join(out)


def render_thread(posts: list[dict[str, Any]], channel: str | None = None, app: str = "dagster-agent-de") -> str:
    """The first thread of ``channel`` (default: the first post's channel) as a standalone HTML page."""
    if not posts:
        raise ValueError("no chat.postMessage bodies to render")
    channel = channel or posts[0]["channel"]
    in_channel = [p for p in posts if p.get("channel") == channel]
    if not in_channel:
        raise ValueError(f"no message was posted to {channel}; channels: {sorted({str(p.get('channel')) for p in posts})}")
    first, replies = in_channel[0], [p for p in in_channel[1:] if p.get("thread_ts")]
    thread_ts = replies[0]["thread_ts"] if replies else None
    replies = [p for p in replies if p.get("thread_ts") == thread_ts]

    def msg(post: dict[str, Any], n: int, cls: str = "") -> str:
        body = render_blocks(post["blocks"]) if post.get("blocks") else f'<div class="section">{mrkdwn(post["text"])}</div>'
        return (f'<div class="msg {cls}"><div class="avatar">AD</div><div class="body"><div class="who">{app}'
                f'<span class="app">APP</span><span class="time">9:{41 + n:02d} AM</span></div>{body}</div></div>')

    parts = [msg(first, 0)]
    if replies:
        parts.append(f'<div class="divider">{len(replies)} repl{"y" if len(replies) == 1 else "ies"}</div>')
        parts += [msg(p, i + 1, "reply") for i, p in enumerate(replies)]
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(channel)}</title>'
            f'<style>{_CSS}</style></head><body><div class="top">Thread <small>{html.escape(channel)}</small></div>'
            f'<div class="thread">{"".join(parts)}</div></body></html>')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("posts", type=Path, help="JSON list of chat.postMessage bodies")
    ap.add_argument("out", type=Path, help="HTML file to write")
    ap.add_argument("--channel", help="the channel whose thread to draw (default: the first post's)")
    args = ap.parse_args()
    args.out.write_text(render_thread(json.loads(args.posts.read_text()), args.channel), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
