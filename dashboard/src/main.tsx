import { createRoot } from "react-dom/client";
import { App } from "./App";
import { currentLocale } from "./i18n";
import "./app.css";

document.documentElement.lang = currentLocale();
createRoot(document.getElementById("root")!).render(<App />);
