/**
 * The word list of generated code phrases: the same 256 words, in the same order, as
 * `peer-client/src/auth/words.rs` (a test checks both lists are identical), so each word
 * carries 8 bits of the secret.
 *
 * @module words
 */

/** Words a generated code is made of. */
export const WORDS = Object.freeze([
  'acorn', 'actor', 'adult', 'advice', 'agent', 'alarm', 'album', 'almond', 'amber', 'anchor',
  'angle', 'animal', 'ankle', 'answer', 'apple', 'april', 'apron', 'arena', 'arrow', 'artist',
  'atlas', 'attic', 'autumn', 'avocado', 'badge', 'bagel', 'bakery', 'balcony', 'ballet', 'bamboo',
  'banana', 'banjo', 'barrel', 'basket', 'beach', 'beacon', 'beaver', 'bicycle', 'biscuit',
  'blanket', 'blossom', 'border', 'bottle', 'bracelet', 'breeze', 'brick', 'bridge', 'broccoli',
  'bronze', 'bucket', 'buffalo', 'bundle', 'burger', 'butter', 'button', 'cabin', 'cactus',
  'camera', 'canal', 'candle', 'canoe', 'canyon', 'captain', 'carpet', 'carrot', 'castle',
  'cattle', 'cello', 'cement', 'cereal', 'chalk', 'channel', 'cheese', 'cherry', 'chess',
  'chimney', 'circle', 'citrus', 'clarinet', 'climate', 'clock', 'cloud', 'clover', 'coconut',
  'coffee', 'comet', 'compass', 'copper', 'coral', 'cotton', 'cousin', 'cowboy', 'crayon',
  'cricket', 'crystal', 'cupboard', 'curtain', 'cushion', 'dancer', 'dentist', 'desert', 'diamond',
  'dinner', 'doctor', 'dolphin', 'donkey', 'dragon', 'drawer', 'dream', 'driver', 'eagle', 'earth',
  'echo', 'editor', 'elbow', 'elephant', 'engine', 'falcon', 'farmer', 'feather', 'fiddle',
  'field', 'finger', 'forest', 'fossil', 'fountain', 'fox', 'garden', 'garlic', 'gentle', 'giant',
  'ginger', 'giraffe', 'glacier', 'glove', 'goat', 'gorilla', 'grape', 'guitar', 'hammer',
  'harbor', 'harvest', 'helmet', 'hiking', 'honey', 'horizon', 'hotel', 'island', 'ivory',
  'jacket', 'jaguar', 'jelly', 'jersey', 'jungle', 'kangaroo', 'kettle', 'kitchen', 'kitten',
  'koala', 'ladder', 'lagoon', 'lantern', 'laptop', 'lemon', 'leopard', 'letter', 'lizard',
  'lobster', 'magnet', 'mango', 'marble', 'meadow', 'melon', 'mirror', 'monkey', 'morning',
  'mountain', 'muffin', 'museum', 'mushroom', 'napkin', 'needle', 'noodle', 'ocean', 'olive',
  'onion', 'orange', 'orbit', 'orchard', 'otter', 'oyster', 'paddle', 'palace', 'panda', 'paper',
  'parrot', 'peanut', 'pebble', 'pencil', 'pepper', 'piano', 'picnic', 'pillow', 'pilot', 'planet',
  'pocket', 'poem', 'potato', 'puzzle', 'pyramid', 'quilt', 'rabbit', 'raccoon', 'radio',
  'rainbow', 'raven', 'ribbon', 'river', 'robot', 'rocket', 'saddle', 'salmon', 'sandal',
  'satellite', 'scarf', 'school', 'seagull', 'shadow', 'shelter', 'shovel', 'silver', 'singer',
  'sketch', 'sled', 'spider', 'spoon', 'squirrel', 'stadium', 'starfish', 'statue', 'sugar',
  'summer', 'sunset', 'sweater', 'tablet', 'teapot', 'tennis', 'thunder', 'tiger', 'tomato',
  'tractor', 'trumpet', 'tulip', 'tunnel', 'turtle', 'umbrella',
]);
