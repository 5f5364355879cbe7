// Builds templates/static/icons.svg, the sprite of the icons xnode's pages use, from the
// lucide-static package (ISC licence) installed by `npm ci` here. Run by `make assets`;
// the output is not kept in git. Pages refer to an icon as /static/icons.svg#NAME and
// always carry a text label too, so a node without the sprite is still usable.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, "node_modules", "lucide-static", "icons");
const target = join(here, "..", "templates", "static", "icons.svg");

// Our name -> Lucide's name.
const ICONS = {
  home: "house",
  local: "users",
  federated: "globe",
  notifications: "bell",
  messages: "message-circle",
  search: "search",
  profile: "user-round",
  settings: "settings",
  admin: "shield",
  logout: "log-out",
  more: "menu",
  compose: "square-pen",
  reply: "reply",
  like: "heart",
  boost: "repeat-2",
  bookmark: "bookmark",
  pin: "pin",
  edit: "pencil",
  delete: "trash-2",
  close: "x",
  link: "external-link",
  call: "phone",
  video: "video",
  hangup: "phone-off",
  mic: "mic",
  "mic-off": "mic-off",
  "video-off": "video-off",
  screen: "monitor-up",
};

const version = JSON.parse(
  readFileSync(join(here, "node_modules", "lucide-static", "package.json"), "utf8"),
).version;
const symbols = Object.entries(ICONS).map(([name, lucide]) => {
  const svg = readFileSync(join(source, `${lucide}.svg`), "utf8");
  const inner = svg.slice(svg.indexOf(">", svg.indexOf("<svg")) + 1, svg.lastIndexOf("</svg>"));
  const body = inner.replace(/\s+/g, " ").trim();
  return `<symbol id="${name}" viewBox="0 0 24 24" fill="none" stroke="currentColor" ` +
    `stroke-width="2" stroke-linecap="round" stroke-linejoin="round">${body}</symbol>`;
});
writeFileSync(
  target,
  `<svg xmlns="http://www.w3.org/2000/svg">\n` +
    `<!-- Lucide icons v${version} (ISC licence, https://lucide.dev), built by assets/build_icons.mjs -->\n` +
    symbols.join("\n") + "\n</svg>\n",
);
console.log(`icons.svg: ${symbols.length} icons from lucide-static ${version}`);
