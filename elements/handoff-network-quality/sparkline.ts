import { svg } from 'lit';

export interface SparklineSeries {
  values: (number | undefined)[];
  /** A CSS class for the line (its colour and dash come from the stylesheet). */
  className: string;
}

/**
 * Small inline SVG line charts, no library: each series is scaled into `width` × `height` from zero
 * to the largest value of all series; missing values break the line; the latest value gets a dot.
 * The SVG is decorative on its own: callers label it with a text alternative.
 */
export function sparkline(series: SparklineSeries[], width = 160, height = 40) {
  const count = Math.max(...series.map((line) => line.values.length), 0);
  const defined = series.flatMap((line) =>
    line.values.filter((value): value is number => value !== undefined),
  );
  const max = Math.max(...defined, 1);
  const pad = 3;
  const x = (index: number) => (count <= 1 ? width - pad : pad + (index * (width - 2 * pad)) / (count - 1));
  const y = (value: number) => height - pad - (value / max) * (height - 2 * pad);
  return svg`
    <line class="axis" x1="0" y1=${height - 0.5} x2=${width} y2=${height - 0.5}></line>
    ${series.map((line) => {
      let d = '';
      let drawing = false;
      line.values.forEach((value, index) => {
        if (value === undefined) {
          drawing = false;
          return;
        }
        d += `${drawing ? 'L' : 'M'}${x(index).toFixed(1)} ${y(value).toFixed(1)} `;
        drawing = true;
      });
      const lastIndex = line.values.findLastIndex((value) => value !== undefined);
      const last = line.values[lastIndex];
      return svg`
        <path class=${line.className} d=${d.trim()}></path>
        ${last === undefined ? '' : svg`<circle class=${line.className} cx=${x(lastIndex)} cy=${y(last)} r="2.5"></circle>`}
      `;
    })}
  `;
}
