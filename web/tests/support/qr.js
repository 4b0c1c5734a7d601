// Reads a QR code the page drew into a canvas, with a decoder independent of the page's encoder.

import { decodeQR } from '@paulmillr/qr/decode.js';

/** The text of the QR code drawn in the canvas at `selector`. */
export async function readQrCode(page, selector) {
  const image = await page.evaluate((selector) => {
    const canvas = document.querySelector(selector);
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    return { width: pixels.width, height: pixels.height, data: Array.from(pixels.data) };
  }, selector);
  return decodeQR({ width: image.width, height: image.height, data: Uint8Array.from(image.data) });
}
