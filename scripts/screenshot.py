"""Screenshots of what a user sees in the Dagster UI after WT-02 (not part of CI).

Starts `dagster dev` on a temporary instance, builds the demo, injects WT-02, waits for the agent's
investigation, then opens pages in headless Chromium (Debian's `chromium`, driven by Playwright with
``executable_path``: no browser download) and saves PNGs to docs/screenshots/. Notifications go to a local
stand-in for Slack's Web API; the thread it records is rendered by ``scripts/render_slack.py`` and shot too.

    apt-get install chromium && pip install -e ".[screenshots]"
    python scripts/screenshot.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dagster_agent_de.demo.incidents import get_incident, inject  # noqa: E402
from dagster_agent_de_tests.deployment.harness import DagsterDev  # noqa: E402
from dagster_agent_de_tests.notify.servers import http_recorder  # noqa: E402
from scripts.render_slack import render_thread  # noqa: E402

# the demo's models are owned by analytics-team: their thread goes to #analytics
NOTIFICATIONS = """notifications:
  ui_url: {ui_url}
  channels:
    analytics: {{kind: slack, channel: '#analytics', base_url_env: AGENT_DE_SHOT_SLACK_API}}
    general: {{kind: slack, channel: '#data', base_url_env: AGENT_DE_SHOT_SLACK_API}}
  default: [general]
  owners: {{analytics-team: [analytics]}}
"""


def shoot_all(chromium: str, pages: dict, out_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        for name, target in pages.items():
            url, click, *rest = target if isinstance(target, tuple) else (target, None)
            opts = rest[0] if rest else {}
            page = browser.new_page(viewport={"width": 1600, "height": opts.get("height", 1100)})
            page.goto(url)
            page.wait_for_load_state("networkidle")
            try:  # the community sign-up dialog of a fresh instance appears after load
                page.get_by_role("button", name="Skip").first.click(timeout=6000)
            except Exception:
                pass
            if click:
                page.get_by_text(click, exact=True).first.click()
            page.wait_for_timeout(2500)
            if opts.get("pick"):  # the event list: open the first event whose detail shows this text
                for item in page.get_by_text(re.compile(r"^[A-Z][a-z]{2} \d+, \d+:\d+ [AP]M$")).all():
                    item.click()
                    page.wait_for_timeout(1000)
                    if page.get_by_text(opts["pick"], exact=True).count():
                        break
            if opts.get("scroll_to"):  # bring a metadata row into view inside the scrolling panel
                page.get_by_text(opts["scroll_to"], exact=True).first.scroll_into_view_if_needed()
                page.wait_for_timeout(500)
            page.screenshot(path=str(out_dir / name), full_page=bool(opts.get("full_page")))
            page.close()
            print(f"saved {(out_dir / name).relative_to(ROOT)}")
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    out_dir = ROOT / "docs" / "screenshots"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d, http_recorder() as slack:
        dev = DagsterDev(Path(d) / "deploy", extra_env={"SLACK_BOT_TOKEN": "xoxb-screenshot",
                                                        "AGENT_DE_SHOT_SLACK_API": slack.url + "/api/"})
        cfg = Path(d) / "notifications.yml"
        cfg.write_text(NOTIFICATIONS.format(ui_url=dev.url))
        dev.env["AGENT_DE_NOTIFICATIONS"] = str(cfg)
        try:
            dev.start()
            assert dev.wait_run(dev.launch("dbt_build")) == "SUCCESS", dev.tail()
            inject(get_incident("wt02_join_drop"), dev.project, dev.state / "warehouse.duckdb")
            dev.wait_run(dev.launch("dbt_build"))
            runs = dev.wait_for("the investigation", lambda: [
                r for r in dev.runs_tagged("agent_de/check", "fct_orders:orders_vs_stripe")
                if r["jobName"] == "investigate" and r["status"] == "SUCCESS"])
            inv = runs[0]["runId"]
            # a new source lands; onboard it from the Launchpad's job
            from dagster_agent_de.demo.data import execute_sql

            execute_sql(dev.state / "warehouse.duckdb", "create schema zendesk", """create table zendesk.tickets as
                select o.order_id * 10 as ticket_id, o.customer_id, ['open', 'solved'][1 + o.order_id % 2] as status,
                       c.email as requester, current_timestamp - interval 2 hour as _loaded_at
                from app.orders o join app.customers c using (customer_id) where o.order_id % 5 = 0""")
            assert dev.wait_run(dev.launch("onboard_source", {"ops": {"onboard": {"config": {"table": "zendesk.tickets"}}}})) \
                == "SUCCESS", dev.tail()
            posts = slack.posted("chat.postMessage")
            (Path(d) / "slack_posts.json").write_text(json.dumps(posts, indent=1))
            thread = Path(d) / "slack_thread.html"
            thread.write_text(render_thread(posts, "#analytics"), encoding="utf-8")
            pages = {
                "fct_orders_checks.png": (f"{dev.url}/assets/fct_orders?view=checks", "orders_vs_stripe"),
                "check_with_link.png": (f"{dev.url}/assets/fct_orders?view=checks", "orders_vs_stripe",
                                        {"height": 1300, "scroll_to": "agent_de/investigation_runs"}),
                "int_orders_enriched_events.png": (f"{dev.url}/assets/int_orders_enriched?view=events", None,
                                                   {"height": 2000, "pick": "orders_vs_stripe"}),
                "slack_thread.png": (thread.as_uri(), None, {"height": 900, "full_page": True}),
                "investigation_run.png": f"{dev.url}/runs/{inv}",
                "escalations.png": f"{dev.url}/assets/agent_de/escalations?view=events",
                "onboarding.png": f"{dev.url}/assets/agent_de/onboarding?view=events",
            }
            shoot_all(args.chromium, pages, out_dir)
        finally:
            dev.stop()


if __name__ == "__main__":
    main()
