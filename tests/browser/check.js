// Loads Recall's pages in Debian's Chromium (headless, through playwright-core) and
// reports, per page and viewport: HTTP status, console errors, a full-page screenshot,
// the status of every link on the page, the visible text, horizontal overflow.
// Usage: node check.js BASE_URL USER TOKEN OUT_DIR PATH...
const { chromium } = require('playwright-core');

(async () => {
  const [base, user, token, out, ...paths] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const viewports = [
    { name: 'laptop', width: 1280, height: 900 },
    { name: 'phone', width: 390, height: 844 },
  ];
  const results = [];
  for (const [i, p] of paths.entries()) {
    for (const vp of viewports) {
      const ctx = await browser.newContext({
        httpCredentials: { username: user, password: token },
        viewport: { width: vp.width, height: vp.height },
      });
      const page = await ctx.newPage();
      const errors = [];
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      page.on('pageerror', (e) => errors.push(String(e)));
      const resp = await page.goto(base + p, { waitUntil: 'load' });
      const shot = `${out}/page-${i}-${vp.name}.png`;
      await page.screenshot({ path: shot, fullPage: true });
      const hrefs = await page.$$eval('a[href]', (as) => as.map((a) => a.href));
      const links = [];
      for (const href of [...new Set(hrefs)]) {
        const r = await ctx.request.get(href);
        links.push({ href, status: r.status() });
      }
      const text = await page.innerText('body');
      const overflow = await page.evaluate(
        () => document.documentElement.scrollWidth > window.innerWidth + 1,
      );
      let printShot = null;
      if (vp.name === 'laptop') {
        await page.emulateMedia({ media: 'print' });
        printShot = `${out}/page-${i}-print.png`;
        await page.screenshot({ path: printShot, fullPage: true });
      }
      results.push({
        path: p, viewport: vp.name, status: resp ? resp.status() : 0, errors,
        screenshot: shot, print: printShot, links, text, overflow,
      });
      await ctx.close();
    }
  }
  await browser.close();
  process.stdout.write(JSON.stringify(results));
})().catch((e) => { console.error(e); process.exit(1); });
