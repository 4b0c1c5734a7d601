/**
 * A link as a QR code, drawn by the page itself (no outside service), so a phone can scan it.
 *
 * @module qr-code
 */

import encodeQR from '../vendor/@paulmillr/qr/index.js';

/** Light modules around the code, as the QR standard asks of scanners' surroundings. */
const QUIET_ZONE = 4;
/** Canvas pixels per module. */
const MODULE_PX = 4;

/**
 * Draws `text` into `canvas` as a QR code: dark on light whatever the page's colour scheme, since
 * that is what scanners read best.
 * @param {HTMLCanvasElement} canvas
 * @param {string} text
 */
export function drawQrCode(canvas, text) {
  const rows = encodeQR(text, 'raw', { ecc: 'medium', border: QUIET_ZONE });
  canvas.width = rows.length * MODULE_PX;
  canvas.height = rows.length * MODULE_PX;
  const context = canvas.getContext('2d');
  context.fillStyle = '#fff';
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.fillStyle = '#000';
  for (const [y, row] of rows.entries()) {
    for (const [x, dark] of row.entries()) if (dark) context.fillRect(x * MODULE_PX, y * MODULE_PX, MODULE_PX, MODULE_PX);
  }
}
