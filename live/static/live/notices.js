// Messages to the logged-in user (docs/PROTOCOL.md, "Messages to one member"). A notice from
// staff is shown in a polite live region, as text only, until dismissed. Any page with a
// socket hands its `member` frames to handleMemberFrame().

const MAX_SHOWN = 5; // older notices give way, so a burst cannot fill the screen

let region = null;

// The region exists (empty) before any notice: screen readers announce additions to a live
// region that was already there, not a region inserted with its content.
export function noticeRegion() {
  if (region === null || !region.isConnected) {
    region = document.createElement("div");
    region.className = "member-notices";
    region.setAttribute("role", "status");
    region.setAttribute("aria-live", "polite");
    (document.querySelector("main") ?? document.body).prepend(region);
  }
  return region;
}

export function showNotice(text) {
  const notice = document.createElement("div");
  notice.className = "member-notice";
  const message = document.createElement("p");
  message.textContent = text;
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.textContent = "Dismiss";
  dismiss.addEventListener("click", () => notice.remove());
  notice.append(message, dismiss);
  const shown = noticeRegion();
  shown.append(notice);
  while (shown.children.length > MAX_SHOWN) shown.firstElementChild.remove();
  return notice;
}

// A `member` frame: events this page does not know are ignored, as the protocol asks.
export function handleMemberFrame(message) {
  if (message.event === "notice" && typeof message.payload?.text === "string") {
    showNotice(message.payload.text);
  }
}

noticeRegion();
