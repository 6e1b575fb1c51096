// Whether the built lab extension (jupyter_cloudws/labextension) is the build of the sources as
// they are now. `check` exits 0 when it is, 1 when it must be built; `write` records the sources'
// hash after a build. Content hashes, not modification times: a checkout, a rebase or an edit
// that keeps the mtime can never leave a stale build behind (package.json "build:if-changed").
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const INPUTS = [
  'src', 'style', 'package.json', 'yarn.lock', 'tsconfig.json', '.yarnrc.yml',
  'jupyter_cloudws/widget/chat.js', 'jupyter_cloudws/widget/chat.css'
];
const OUTPUTS = ['jupyter_cloudws/labextension/package.json', 'jupyter_cloudws/labextension/static/style.js'];
const STAMP = 'lib/labextension.sha256';

function files(path) {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path).sort().flatMap((name) => files(join(path, name)));
}

function digest() {
  const hash = createHash('sha256');
  for (const file of INPUTS.flatMap(files)) {
    hash.update(`${file}\0`).update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex');
}

const command = process.argv[2];
if (command === 'check') {
  const built = OUTPUTS.every((path) => existsSync(path));
  const same = existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === digest();
  if (built && same) {
    console.log('jupyter-cloudws: the lab extension is up to date with its sources');
    process.exit(0);
  }
  console.log('jupyter-cloudws: building the lab extension (its sources changed)');
  process.exit(1);
} else if (command === 'write') {
  mkdirSync('lib', { recursive: true });
  writeFileSync(STAMP, `${digest()}\n`);
} else {
  console.error('usage: node scripts/labextension_stamp.mjs check|write');
  process.exit(2);
}
