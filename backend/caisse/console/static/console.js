// A form of the console is sent once: a second click (or Enter) while the first answer is on its
// way does nothing. The forms work without this script; the services also refuse what was done.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
  if (form.hasAttribute("data-sent")) {
    event.preventDefault();
    return;
  }
  form.setAttribute("data-sent", "");
  for (const button of form.querySelectorAll("button")) button.setAttribute("aria-disabled", "true");
});
