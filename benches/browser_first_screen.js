// The dashboard's first screen in a real browser: headless Chromium, driven over the DevTools
// protocol, loads the page REPEAT times (a fresh browser context each, so nothing is cached)
// and reports, from the page's own timing, navigation start to the first overview drawn
// (the `llmwatch:first-overview` mark) and to the HTML's DOMContentLoaded.
//
//   npm install --prefix "$HOME/.cache/llmwatch/puppeteer" puppeteer-core@23
//   NODE_PATH=$HOME/.cache/llmwatch/puppeteer/node_modules node benches/browser_first_screen.js URL [REPEAT]
"use strict";
const puppeteer = require("puppeteer-core");

async function main() {
  const [url, repeat = "5"] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    defaultViewport: { width: 1500, height: 1000 },
  });
  const drawn = [];
  const ready = [];
  for (let i = 0; i < Number(repeat); i++) {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForFunction(() => performance.getEntriesByName("llmwatch:first-overview").length > 0, { timeout: 30000 });
    const t = await page.evaluate(() => ({
      drawn: performance.getEntriesByName("llmwatch:first-overview")[0].startTime,
      ready: performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd,
      rows: document.querySelectorAll("#body tr[data-index]").length,
    }));
    drawn.push(t.drawn);
    ready.push(t.ready);
    console.log(`load ${i + 1}: first overview ${t.drawn.toFixed(0)} ms (${t.rows} rows), DOMContentLoaded ${t.ready.toFixed(0)} ms`);
    await context.close();
  }
  await browser.close();
  const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  console.log(`browser first screen: median ${median(drawn).toFixed(0)} ms, worst ${Math.max(...drawn).toFixed(0)} ms; DOMContentLoaded median ${median(ready).toFixed(0)} ms`);
}

main().catch((e) => { console.error(e); process.exit(1); });
