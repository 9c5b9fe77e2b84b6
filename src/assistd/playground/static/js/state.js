// What the views share: the lists they all show, and a bus to tell each other of changes.

export const state = {
  assistants: [],
  stores: [],
};

export const bus = new EventTarget();

export function emit(name, detail) {
  bus.dispatchEvent(new CustomEvent(name, { detail }));
}

export function on(name, handler) {
  bus.addEventListener(name, (e) => handler(e.detail));
}
