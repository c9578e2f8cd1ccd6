// The command line of the small bench scripts (floor, tail, handoff-path, yield-budget):
// `--name value` options and repeated `--variant name='{"option":value}'`. bench/run.mjs,
// with many options and help text, uses commander instead.
const args = process.argv.slice(2);

/** The value after `name`, or `fallback` when the option is absent. */
export function option(name, fallback) {
  return args.includes(name) ? args[args.indexOf(name) + 1] : fallback;
}

/** `option()` as a number. */
export function numberOption(name, fallback) {
  return Number(option(name, fallback));
}

export function hasOption(name) {
  return args.includes(name);
}

/** Every `--variant name=<json>`: udp-ring receivers again with those options (or `{ env }`). */
export function variantOptions() {
  const variants = [];
  args.forEach((a, i) => {
    if (a === '--variant') {
      const [name, json] = args[i + 1].split(/=(.*)/s);
      variants.push({ name, options: JSON.parse(json) });
    }
  });
  return variants;
}
