// Airflow's colour mode, applied before the page paints (loaded in <head>, so no light flash).
// Airflow 3's UI (next-themes) keeps it as the class "light" or "dark" on its <html>, and the
// choice in localStorage "theme" ("light", "dark" or "system"); the view sits in an iframe of
// that UI on the same origin, so it reads the parent's class first and follows its changes.
"use strict";

(() => {
  const root = document.documentElement;
  function parentRoot() {
    try {
      return window.parent !== window ? window.parent.document.documentElement : null;
    } catch {
      return null; // another origin: fall back to the stored choice
    }
  }
  function stored() {
    let choice = null;
    try { choice = window.localStorage.getItem("theme"); } catch { /* storage blocked */ }
    if (choice === "light" || choice === "dark") return choice;
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  function apply() {
    const parent = parentRoot();
    let mode = stored();
    if (parent && parent.classList.contains("dark")) mode = "dark";
    else if (parent && parent.classList.contains("light")) mode = "light";
    root.classList.toggle("dark", mode === "dark");
    root.classList.toggle("light", mode !== "dark");
    root.style.colorScheme = mode;
  }
  apply();
  const parent = parentRoot();
  if (parent) new MutationObserver(apply).observe(parent, { attributes: true, attributeFilter: ["class"] });
  window.addEventListener("storage", (event) => { if (event.key === "theme") apply(); });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", apply);
})();
