"""The seed article's section-4 program (shared/seed/, "4. 具体代码实例和详细解释说明"), run on lstm_native.

Its code blocks 4.1 to 4.4 stand below unchanged except for the imports (4.1); the article leaves the
data to the reader, so the preamble loads a real data set: JapaneseVowels (270 training and 370 test
utterances of 12 LPC coefficients per frame, 9 speakers), shipped inside aeon
(`pip install --no-deps aeon==1.6.0`), padded with zeros in front to 29 frames. The test split serves as
the validation data.

    python examples/seed_program.py
"""

# -- preamble: the data the article assumes ----------------------------------------------------------------
import numpy as np

import lstm_native
from lstm_native import datasets

lstm_native.utils.set_random_seed(0)
(X_train, labels_train), (X_val, labels_val), _, _ = datasets.japanese_vowels()
timesteps, input_dim = X_train.shape[1:]
output_dim = int(labels_train.max()) + 1
y_train, y_val = np.eye(output_dim, dtype=np.float32)[labels_train], np.eye(output_dim, dtype=np.float32)[labels_val]

# -- 4.1 导入库 (the imports: the only lines changed) --------------------------------------------------------
import numpy as np
from lstm_native.models import Sequential
from lstm_native.layers import LSTM, Dense

# -- 4.2 构建 LSTM 模型 ------------------------------------------------------------------------------------
model = Sequential()
model.add(LSTM(128, input_shape=(timesteps, input_dim)))
model.add(Dense(output_dim, activation='softmax'))

# -- 4.3 编译模型 -------------------------------------------------------------------------------------------
model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])

# -- 4.4 训练模型 -------------------------------------------------------------------------------------------
model.fit(X_train, y_train, batch_size=32, epochs=10, validation_data=(X_val, y_val))

# -- the outcome ---------------------------------------------------------------------------------------------
loss, accuracy = model.evaluate(X_val, y_val, verbose=0)
print(f"validation accuracy: {accuracy:.4f}  (loss {loss:.4f})")
