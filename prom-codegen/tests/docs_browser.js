// Drives Debian's headless Chromium through playwright-core (no browser download) over a site
// written by `prom-codegen docs`, and prints one JSON report on stdout:
//   node docs_browser.js SITE_DIR CHROMIUM [SCREENSHOT.png]
// - crawls every page reachable from index.html through internal links (HTML <a> and SVG <a>),
//   recording console errors, page errors, failed requests and links to missing pages;
// - screenshots the topology graph and counts its non-background pixels in the browser (a
//   canvas reads the PNG back), so a blank or invisible graph is caught.
'use strict';
const { chromium } = require('playwright-core');
const path = require('path');
const fs = require('fs');
const { pathToFileURL, fileURLToPath } = require('url');

async function main() {
  const [siteDir, executablePath, screenshotPath] = process.argv.slice(2);
  const root = path.resolve(siteDir);
  const rootUrl = pathToFileURL(root + path.sep).href;
  const userDataDir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'prom-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const report = { pages: [], links: 0, errors: [], broken: [], external: [], graph: null };
  try {
    const page = await context.newPage();
    let current = '';
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') report.errors.push(`${current}: console ${msg.type()}: ${msg.text()}`);
    });
    page.on('pageerror', (error) => report.errors.push(`${current}: page error: ${error.message}`));
    page.on('requestfailed', (request) => report.errors.push(`${current}: request failed: ${request.url()} (${request.failure() && request.failure().errorText})`));
    page.on('request', (request) => {
      const url = request.url();
      if (!url.startsWith('file:') && !url.startsWith('data:')) report.external.push(`${current}: ${url}`);
    });
    const queue = [rootUrl + 'index.html'];
    const seen = new Set(queue);
    while (queue.length > 0) {
      const url = queue.shift();
      current = path.relative(root, fileURLToPath(url));
      const response = await page.goto(url, { waitUntil: 'load', timeout: 30000 });
      if (!response || !response.ok()) {
        report.errors.push(`${current}: did not load`);
        continue;
      }
      report.pages.push(current);
      const hrefs = await page.evaluate(() => Array.from(document.querySelectorAll('a'))
        .map((a) => a.getAttribute('href') || a.getAttribute('xlink:href'))
        .filter((h) => h !== null));
      for (const href of hrefs) {
        report.links += 1;
        const target = new URL(href, url);
        if (target.protocol !== 'file:') {
          report.external.push(`${current}: link ${href}`);
          continue;
        }
        target.hash = '';
        const file = fileURLToPath(target.href);
        if (!file.startsWith(root + path.sep)) {
          report.broken.push(`${current}: ${href} leaves the site`);
        } else if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
          report.broken.push(`${current}: ${href} (no such file)`);
        } else if (file.endsWith('.html') && !seen.has(target.href)) {
          seen.add(target.href);
          queue.push(target.href);
        }
      }
    }
    current = 'index.html';
    await page.goto(rootUrl + 'index.html', { waitUntil: 'load' });
    const svg = page.locator('svg.topology');
    const box = await svg.boundingBox();
    const nodes = await page.locator('svg.topology g.node').count();
    const png = await svg.screenshot(screenshotPath ? { path: screenshotPath } : {});
    const pixels = await page.evaluate(async (data) => {
      const image = new Image();
      image.src = 'data:image/png;base64,' + data;
      await image.decode();
      const canvas = document.createElement('canvas');
      canvas.width = image.width;
      canvas.height = image.height;
      const ctx = canvas.getContext('2d');
      ctx.drawImage(image, 0, 0);
      const { data: rgba } = ctx.getImageData(0, 0, image.width, image.height);
      let ink = 0;
      for (let i = 0; i < rgba.length; i += 4) {
        if (rgba[i] < 245 || rgba[i + 1] < 245 || rgba[i + 2] < 245) ink += 1;
      }
      return { ink, total: rgba.length / 4 };
    }, png.toString('base64'));
    report.graph = { width: box ? box.width : 0, height: box ? box.height : 0, nodes, ...pixels };
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().catch((error) => {
  process.stderr.write(`docs_browser.js: ${error.stack || error}\n`);
  process.exit(2);
});
