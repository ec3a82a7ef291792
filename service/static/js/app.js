// Small progressive enhancements; every page works without them.
"use strict";

// Show each slider's value next to it as it moves.
document.querySelectorAll('input[type="range"]').forEach((input) => {
  const output = document.querySelector(`output[for="${input.id}"]`);
  if (!output) return;
  const show = () => { output.textContent = input.value; };
  input.addEventListener("input", show);
  show();
});

// Fill the browser's time zone into the sign-up form.
document.querySelectorAll("[data-detect-timezone]").forEach((input) => {
  try {
    input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch (_) {
    input.value = "UTC";
  }
});

// Username suggestions: one click fills the field.
document.querySelectorAll("button[data-fill]").forEach((button) => {
  button.addEventListener("click", () => {
    const target = document.getElementById(button.dataset.fill);
    if (target) { target.value = button.dataset.value; target.focus(); }
  });
});

// Copy buttons (the sign-in key): shown only where the page may write to the clipboard.
document.querySelectorAll("button[data-copy]").forEach((button) => {
  const source = document.getElementById(button.dataset.copy);
  const status = document.getElementById(button.dataset.copyStatus);
  if (!source || !status || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(source.value);
      status.textContent = "Copied.";
    } catch (_) {
      source.select();
      status.textContent = "Couldn't copy here: the key is selected, copy it with Ctrl+C (⌘C on a Mac).";
    }
  });
});

// The running task's live elapsed time.
document.querySelectorAll(".elapsed[data-base-minutes]").forEach((el) => {
  const base = parseFloat(el.dataset.baseMinutes) || 0;
  const loaded = Date.now();
  const render = () => {
    const total = Math.floor(base * 60 + (Date.now() - loaded) / 1000);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    el.textContent = (h ? `${h} h ` : "") + `${String(m).padStart(h ? 2 : 1, "0")} min ${String(s).padStart(2, "0")} s`;
  };
  render();
  setInterval(render, 1000);
});
