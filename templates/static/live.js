// The live layer of every signed-in page; every page works without it (plain forms, reloads).
// - one WebSocket per tab (/live), reconnecting with backoff; other scripts get its
//   frames as "xnode:frame" events on document and send with window.xnodeLive.send();
// - the nav's message and notification badges follow the unread counts;
// - timelines offer "N new posts" and insert them where the reader is, on request;
// - the message list follows new messages;
// - buttons under posts and on profiles (like, boost, bookmark, pin, follow, mute, block)
//   act without leaving the page: the form is sent, and the part of the page it changed is
//   taken from the page the server answers with;
// - times read "5 min", "yesterday"… in the reader's time zone, the exact time on hover.
"use strict";

(() => {
  const MAX_BACKOFF_MS = 30000;
  const TIMELINE_PAGE = 20; // the server's page size: more new posts than that, reload

  // Ids are 63-bit and JSON numbers lose digits past 2**53: ids become strings before
  // parsing. Only real keys (after "{" or ",") match; quotes inside HTML are escaped.
  const parseFrame = (text) =>
    JSON.parse(text.replace(/([{,]\s*)"(id|conversation)":\s*(\d+)/g, '$1"$2":"$3"'));

  const csrfToken = () => {
    const input = document.querySelector('input[name="csrf_token"]');
    return input ? input.value : "";
  };

  // --- status messages -----------------------------------------------------------------

  let statusLine = null;
  const announce = (text, level) => {
    if (!statusLine) {
      statusLine = document.createElement("p");
      statusLine.className = "live-status";
      statusLine.setAttribute("role", "status");
      document.body.append(statusLine);
    }
    statusLine.textContent = text;
    statusLine.dataset.level = level || "info";
    statusLine.hidden = !text;
    clearTimeout(statusLine.timer);
    statusLine.timer = setTimeout(() => {
      statusLine.hidden = true;
    }, 5000);
  };

  // --- nav badges ------------------------------------------------------------------------

  const setBadge = (link, count, className, label) => {
    if (!link) return;
    let badge = link.querySelector(".badge");
    if (!count) {
      if (badge) badge.remove();
      return;
    }
    if (!badge) {
      badge = document.createElement("span");
      badge.className = className;
      link.append(" ", badge);
    }
    badge.textContent = String(count > 999 ? "999+" : count);
    badge.setAttribute("aria-label", label(count));
  };

  const updateBadges = (frame) => {
    setBadge(document.querySelector("a.nav-messages"), frame.messages, "badge badge-messages",
      (n) => n + " conversations with unread messages");
    setBadge(document.querySelector('.nav-links a[href="/notifications"]'), frame.notifications,
      "badge", (n) => n + " unread");
    const messages = document.querySelector("a.nav-messages");
    let requests = document.querySelector("a.nav-requests");
    if (frame.requests && !requests && messages) {
      requests = document.createElement("a");
      requests.href = "/messages/requests";
      requests.className = "nav-requests";
      messages.after(" ", requests);
    }
    if (requests) {
      requests.textContent = "";
      if (!frame.requests) {
        requests.remove();
      } else {
        const badge = document.createElement("span");
        badge.className = "badge badge-requests";
        badge.textContent = frame.requests + " new";
        badge.setAttribute("aria-label", frame.requests + " message requests");
        requests.append(badge);
      }
    }
  };

  // --- relative times ----------------------------------------------------------------------

  const exact = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const dayOnly = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
  const withYear = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
  const startOfDay = (date) => new Date(date.getFullYear(), date.getMonth(), date.getDate());

  const relative = (date, now) => {
    const seconds = Math.round((now - date) / 1000);
    if (seconds < 45) return "just now";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return minutes + " min";
    const hours = Math.round(minutes / 60);
    const days = Math.round((startOfDay(now) - startOfDay(date)) / 86400000);
    if (days === 0) return hours + " h";
    if (days === 1) return "yesterday";
    if (days < 7) return days + " days";
    return date.getFullYear() === now.getFullYear() ? dayOnly.format(date) : withYear.format(date);
  };

  const refreshTimes = (root) => {
    const now = new Date();
    for (const time of (root || document).querySelectorAll("time[datetime]")) {
      const date = new Date(time.getAttribute("datetime"));
      if (Number.isNaN(date.getTime())) continue;
      time.textContent = relative(date, now);
      time.title = exact.format(date);
    }
  };

  // --- pages fetched for their parts -------------------------------------------------------

  const fetchPage = async (url, options) => {
    const response = await fetch(url, { credentials: "same-origin", ...options });
    const text = await response.text();
    return { response, doc: new DOMParser().parseFromString(text, "text/html") };
  };

  // Fragments from a fetched page carry that page's CSRF token, the same as this one's.
  const adopt = (node) => {
    const copy = document.importNode(node, true);
    refreshTimes(copy);
    return copy;
  };

  const flashOf = (doc) => {
    const flash = doc.querySelector(".flashes .flash");
    if (!flash) return null;
    return { text: flash.textContent.trim(), level: flash.className.includes("flash-error") ? "error" : "info" };
  };

  // --- buttons that act in place ---------------------------------------------------------------

  const swapFor = (form) => {
    const card = form.closest("article.post");
    if (card && form.closest("footer.post-actions")) return { kind: "post", card };
    const actions = form.closest(".profile-actions");
    if (actions) return { kind: "profile", actions };
    return null;
  };

  const sendInPlace = async (form, target) => {
    const buttons = form.querySelectorAll("button");
    for (const button of buttons) button.disabled = true;
    try {
      const { response, doc } = await fetchPage(form.action, { method: "POST", body: new FormData(form) });
      const flash = flashOf(doc);
      if (!response.ok && !flash) {
        announce(`That did not work (${response.status}). Try again.`, "error");
        return;
      }
      if (target.kind === "post") {
        const fresh = doc.getElementById(target.card.id);
        const footer = fresh ? fresh.querySelector("footer.post-actions") : null;
        const old = target.card.querySelector("footer.post-actions");
        if (footer && old) old.replaceWith(adopt(footer));
        else if (!fresh && form.action.endsWith("/delete")) {
          target.card.classList.add("tombstone");
          target.card.replaceChildren(Object.assign(document.createElement("p"),
            { className: "muted", textContent: "This post was deleted." }));
        }
      } else {
        const fresh = doc.querySelector(".profile-actions");
        if (fresh) target.actions.replaceWith(adopt(fresh));
        const stats = doc.querySelector(".profile-stats");
        const oldStats = document.querySelector(".profile-stats");
        if (stats && oldStats) oldStats.replaceWith(adopt(stats));
      }
      if (flash) announce(flash.text, flash.level);
    } catch (error) {
      announce("That did not work: check your connection and try again.", "error");
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  };

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (event.defaultPrevented || !(form instanceof HTMLFormElement)) return;
    if ((form.method || "").toLowerCase() !== "post") return;
    const target = swapFor(form);
    if (!target) return;
    event.preventDefault();
    sendInPlace(form, target);
  });

  // --- timelines: "N new posts" ------------------------------------------------------------

  const timeline = document.querySelector("section.timeline[data-live-timeline]");
  const timelineKind = timeline ? timeline.dataset.liveTimeline : null;
  const freshIds = new Set();
  let newButton = null;

  const firstCursor = () => {
    const card = timeline.querySelector("article.post[data-cursor]");
    return card ? card.dataset.cursor : null;
  };

  const showNewPosts = async () => {
    const since = firstCursor();
    const base = timeline.dataset.base || location.pathname;
    if (!since || freshIds.size >= TIMELINE_PAGE) {
      location.assign(base); // too many to insert: the newest page
      return;
    }
    const join = base.includes("?") ? "&" : "?";
    const { doc } = await fetchPage(`${base}${join}min_id=${since}`);
    const cards = [...doc.querySelectorAll("section.timeline article.post")];
    const empty = timeline.querySelector(".timeline-empty");
    if (empty && cards.length) empty.remove();
    const anchor = timeline.firstElementChild;
    for (const card of cards) {
      if (!document.getElementById(card.id)) timeline.insertBefore(adopt(card), anchor);
    }
    freshIds.clear();
    newButton.hidden = true;
    const first = timeline.querySelector("article.post");
    if (first) first.scrollIntoView({ block: "nearest" });
  };

  const noteNewPost = (frame) => {
    if (!timelineKind || !frame[timelineKind]) return;
    if (document.getElementById("post-" + frame.id)) return;
    freshIds.add(frame.id);
    if (!newButton) {
      newButton = document.createElement("button");
      newButton.type = "button";
      newButton.className = "new-posts";
      newButton.addEventListener("click", () => {
        showNewPosts().catch(() => announce("The new posts could not be loaded.", "error"));
      });
      timeline.before(newButton);
    }
    const n = freshIds.size;
    newButton.textContent = n === 1 ? "1 new post" : `${n} new posts`;
    newButton.hidden = false;
  };

  // --- the list of conversations -------------------------------------------------------------

  const conversations = document.querySelector("[data-live-conversations]");
  let listRefresh = null;
  const refreshConversations = () => {
    clearTimeout(listRefresh);
    listRefresh = setTimeout(async () => {
      try {
        const { doc } = await fetchPage(location.href);
        const fresh = doc.querySelector("[data-live-conversations]");
        if (fresh) conversations.replaceWith(adopt(fresh));
      } catch (error) {
        // the next message tries again
      }
    }, 300);
  };

  // --- lightbox: a post's images, full size, without leaving the page ------------------------

  let lightbox = null;
  const openLightbox = (links, index) => {
    if (!lightbox) {
      lightbox = document.createElement("dialog");
      lightbox.className = "lightbox";
      lightbox.setAttribute("aria-label", "Image");
      lightbox.innerHTML =
        '<figure><img alt=""><figcaption></figcaption></figure>' +
        '<button type="button" class="lightbox-close" aria-label="Close">✕</button>' +
        '<button type="button" class="lightbox-prev" aria-label="Previous image">‹</button>' +
        '<button type="button" class="lightbox-next" aria-label="Next image">›</button>';
      document.body.append(lightbox);
      lightbox.querySelector(".lightbox-close").addEventListener("click", () => lightbox.close());
      lightbox.addEventListener("click", (event) => {
        if (event.target === lightbox || event.target.tagName === "FIGURE") lightbox.close();
      });
    }
    let current = index;
    const show = () => {
      const link = links[current];
      const thumb = link.querySelector("img");
      const image = lightbox.querySelector("img");
      image.src = link.href;
      image.alt = thumb ? thumb.alt : "";
      lightbox.querySelector("figcaption").textContent = thumb ? thumb.alt : "";
      lightbox.querySelector(".lightbox-prev").hidden = current === 0;
      lightbox.querySelector(".lightbox-next").hidden = current === links.length - 1;
    };
    lightbox.querySelector(".lightbox-prev").onclick = () => { current = Math.max(0, current - 1); show(); };
    lightbox.querySelector(".lightbox-next").onclick = () => {
      current = Math.min(links.length - 1, current + 1);
      show();
    };
    lightbox.onkeydown = (event) => {
      if (event.key === "ArrowLeft" && current > 0) { current -= 1; show(); }
      if (event.key === "ArrowRight" && current < links.length - 1) { current += 1; show(); }
    };
    show();
    lightbox.showModal();
  };

  document.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest(".post-media a, .message a.media-link") : null;
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    const group = link.closest(".post-media, .message");
    const links = [...group.querySelectorAll(".post-media a, a.media-link")];
    event.preventDefault();
    openLightbox(links, Math.max(0, links.indexOf(link)));
  });

  // --- the socket ------------------------------------------------------------------------------

  let socket = null;
  let backoff = 1000;

  const onFrame = (frame) => {
    if (frame.type === "unread") updateBadges(frame);
    else if (frame.type === "timeline") noteNewPost(frame);
    else if (frame.type === "message" && conversations) refreshConversations();
    document.dispatchEvent(new CustomEvent("xnode:frame", { detail: frame }));
  };

  const connect = () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/live`);
    socket.addEventListener("open", () => {
      backoff = 1000;
    });
    socket.addEventListener("message", (event) => {
      try {
        onFrame(parseFrame(event.data));
      } catch (error) {
        console.warn("ignoring a live frame", error);
      }
    });
    socket.addEventListener("close", () => {
      socket = null;
      setTimeout(connect, backoff + Math.random() * 500);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    });
  };

  window.xnodeLive = {
    parseFrame,
    csrfToken,
    refreshTimes,
    announce,
    send: (frame) => {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify(frame));
        return true;
      }
      return false;
    },
  };

  refreshTimes();
  setInterval(() => refreshTimes(), 60000);
  if (document.body.dataset.signedIn !== undefined) connect();
})();
