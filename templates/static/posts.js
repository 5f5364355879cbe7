// Progressive enhancement for posts; every page works without it.
// - forms with data-confirm ask before submitting (deleting a post);
// - the compose textarea shows how many characters are left.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

document.addEventListener("DOMContentLoaded", () => {
  for (const area of document.querySelectorAll("textarea[data-max-chars]")) {
    const max = Number(area.dataset.maxChars);
    const kind = area.form ? area.form.elements.namedItem("kind") : null;
    const counter = document.createElement("p");
    counter.className = "help char-count";
    counter.id = area.id + "-count";
    area.after(counter);
    area.setAttribute(
      "aria-describedby",
      [area.getAttribute("aria-describedby"), counter.id].filter(Boolean).join(" "),
    );
    const update = () => {
      // Articles have a far larger limit; the server words the exact one.
      if (kind && kind.value === "article") {
        counter.textContent = area.value.length + " characters";
        counter.classList.remove("over");
        return;
      }
      const left = max - area.value.length;
      counter.textContent = left >= 0 ? left + " characters left" : -left + " characters too many";
      counter.classList.toggle("over", left < 0);
    };
    area.addEventListener("input", update);
    if (kind) kind.addEventListener("change", update);
    update();
  }
});
