// Copies the ES modules the transfer page needs from installed @noble/curves and @noble/hashes
// packages into web/vendor/@noble/, with their licences. Only the files reachable from the entry
// points are copied, and bare imports (`@noble/hashes/sha2.js`) become relative paths, because the
// page loads plain modules without an import map (its Content-Security-Policy forbids inline script).
//
//   npm install --prefix /tmp/noble @noble/curves@VERSION @noble/hashes@VERSION
//   node web/tests/vendor-noble.js /tmp/noble/node_modules
//
// Then record the versions in web/vendor/README.md.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const VENDOR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../vendor/@noble');
const ENTRY_POINTS = [
  'curves/ed25519.js',
  'hashes/sha2.js',
  'hashes/hkdf.js',
  'hashes/hmac.js',
  'hashes/utils.js',
];
const IMPORT = /(\bfrom\s*|\bimport\s*)(['"])([^'"]+)\2/g;

const modules = process.argv[2];
if (!modules) {
  console.error('usage: node web/tests/vendor-noble.js NODE_MODULES_DIR');
  process.exit(2);
}
const source = path.join(modules, '@noble');

/** Only real import statements: lines that start with `import` or `export ... from` (not doc comments). */
function importsOf(text) {
  const found = [];
  for (const line of text.split('\n')) {
    if (!/^\s*(import|export)\b/.test(line)) continue;
    for (const match of line.matchAll(IMPORT)) found.push(match[3]);
  }
  return found;
}

function resolve(fromFile, specifier) {
  if (specifier.startsWith('@noble/')) return specifier.slice('@noble/'.length);
  return path.posix.normalize(path.posix.join(path.posix.dirname(fromFile), specifier));
}

const seen = new Set();
const queue = [...ENTRY_POINTS];
while (queue.length) {
  const file = queue.shift();
  if (seen.has(file)) continue;
  seen.add(file);
  let text = fs.readFileSync(path.join(source, file), 'utf8');
  for (const specifier of importsOf(text)) queue.push(resolve(file, specifier));
  text = text
    .split('\n')
    .map((line) => {
      if (!/^\s*(import|export)\b/.test(line)) return line;
      return line.replace(IMPORT, (all, keyword, quote, specifier) => {
        if (!specifier.startsWith('@noble/')) return all;
        let relative = path.posix.relative(path.posix.dirname(file), resolve(file, specifier));
        if (!relative.startsWith('.')) relative = `./${relative}`;
        return `${keyword}${quote}${relative}${quote}`;
      });
    })
    .join('\n')
    // The source maps point at files that are not copied.
    .replace(/\n\/\/# sourceMappingURL=.*$/, '\n');
  const target = path.join(VENDOR, file);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.writeFileSync(target, text);
}
for (const pkg of ['curves', 'hashes']) {
  fs.copyFileSync(path.join(source, pkg, 'LICENSE'), path.join(VENDOR, pkg, 'LICENSE'));
  const { version } = JSON.parse(fs.readFileSync(path.join(source, pkg, 'package.json'), 'utf8'));
  console.log(`@noble/${pkg} ${version}`);
}
console.log([...seen].sort().join('\n'));
